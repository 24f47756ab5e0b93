package main

import (
	"context"
	"io"
	"os"
	"time"

	"github.com/vmatool/vmatool/internal/pveconf"
	"github.com/vmatool/vmatool/internal/recipe"
	"github.com/vmatool/vmatool/vma"
)

// deploySource is what deploy was given: an image to pack, or an archive
// to send as it is.
type deploySource struct {
	*recipe.Source
	// decompress are the options for reading a compressed archive.
	decompress []vma.DecompressOption
}

// inspectSource tells an archive (compressed or not, by content) from an
// image.
func inspectSource(path string, opts ...vma.DecompressOption) (*deploySource, error) {
	src, err := recipe.Identify(path, opts...)
	if err != nil {
		return nil, windowHint(err)
	}
	return &deploySource{Source: src, decompress: opts}, nil
}

// outgoing is the archive one target receives: its name on the node and
// how to produce its bytes.
type outgoing struct {
	name  string
	total int64 // bytes the progress counts toward
	write func(ctx context.Context, w io.Writer, p vma.Progress) error
	close func()
}

// prepareOutgoing validates everything about the archive before any
// connection is made: the disk opens, its size fits, the config is sane.
// uncompressed is for --stream, where qmrestore reads a plain VMA. chain,
// if set, is given the line that shows an image's backing chain.
func prepareOutgoing(src *deploySource, o *deployOptions, now time.Time, uncompressed bool, chain func(string)) (*outgoing, error) {
	comp := vma.Zstd
	if src.Archive() {
		comp = src.Compression
	}
	if uncompressed {
		comp = vma.None
	}
	if src.Archive() {
		return &outgoing{
			name:  recipe.VzdumpName(o.vmid, now, comp),
			total: src.Size,
			close: func() {},
			write: func(ctx context.Context, w io.Writer, p vma.Progress) error {
				return copyArchive(src, w, uncompressed, p)
			},
		}, nil
	}

	spec := recipe.Spec{Disks: []recipe.Disk{{Name: "scsi0", Path: src.Path, DataFile: o.dataFile}}, VMID: o.vmid, Storage: o.storage}
	if o.config != "" {
		cfgs, err := recipe.ReadConfigs(o.config)
		if err != nil {
			return nil, err
		}
		cfgs[0].Name = pveconf.ConfigName // whatever the file is called, it is the VM's config
		spec.Configs = cfgs
	} else {
		spec.VM = &o.vm
	}
	opts := []recipe.Option{recipe.WithBacking(recipe.BackingMode(o.noBacking, true)), recipe.WithNow(now)}
	if chain != nil {
		opts = append(opts, recipe.WithChain(chain))
	}
	pack, err := recipe.Open(spec, opts...)
	if err != nil {
		return nil, recipeError(err)
	}
	return &outgoing{
		name:  pack.Name(comp),
		total: pack.Size,
		close: func() { pack.Close() },
		write: func(ctx context.Context, w io.Writer, p vma.Progress) error {
			return pack.WriteArchive(ctx, w, comp, o.level, p)
		},
	}, nil
}

// copyArchive sends an archive file, decompressing it for --stream.
func copyArchive(src *deploySource, w io.Writer, uncompressed bool, p vma.Progress) error {
	f, err := os.Open(src.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = progressReader{f, p}
	if uncompressed && src.Compression != vma.None {
		dr, _, err := vma.Decompress(r, src.decompress...)
		if err != nil {
			return err
		}
		defer dr.Close()
		r = dr
	}
	_, err = io.Copy(w, r)
	return err
}

type progressReader struct {
	r io.Reader
	p vma.Progress
}

func (pr progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	if pr.p != nil {
		pr.p.Update(int64(n))
	}
	return n, err
}
