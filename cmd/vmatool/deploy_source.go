package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/vmatool/vmatool/internal/pveconf"
	"github.com/vmatool/vmatool/vma"
)

// deploySource is what deploy was given: an image to pack, or an archive
// to send as it is.
type deploySource struct {
	path    string
	archive bool
	comp    vma.Compression // of an archive
	size    int64           // file size
	// decompress are the options for reading a compressed archive.
	decompress []vma.DecompressOption
}

// inspectSource tells an archive (compressed or not, by content) from an
// image.
func inspectSource(path string, opts ...vma.DecompressOption) (*deploySource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	src := &deploySource{path: path, size: st.Size(), decompress: opts}
	dr, comp, err := vma.Decompress(f, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, windowHint(err))
	}
	defer dr.Close()
	head := make([]byte, 4)
	n, err := io.ReadFull(dr, head)
	switch {
	case string(head[:n]) == "VMA\x00":
		src.archive, src.comp = true, comp
	case err != nil && err != io.EOF && err != io.ErrUnexpectedEOF:
		return nil, fmt.Errorf("%s: %w", path, windowHint(err)) // the decompressor failed
	case comp != vma.None:
		return nil, fmt.Errorf("%s: a %s-compressed file that is not a VMA archive; give an image or an archive", path, comp)
	}
	return src, nil
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
	if src.archive {
		comp := src.comp
		if uncompressed {
			comp = vma.None
		}
		return &outgoing{
			name:  vzdumpName(o.vmid, now, comp),
			total: src.size,
			close: func() {},
			write: func(ctx context.Context, w io.Writer, p vma.Progress) error {
				return copyArchive(src, w, uncompressed, p)
			},
		}, nil
	}

	disk, err := openDiskWith(src.path, diskOptions{dataFile: o.dataFile, backing: backingMode(o.noBacking, true), chain: chain})
	if err != nil {
		return nil, err
	}
	drive := pveconf.Drive{Key: "scsi0", DevName: pveconf.DevName("scsi0"), Storage: o.storage, Format: "raw", Size: disk.disk.Size()}
	var conf []byte
	if o.config != "" {
		data, err := os.ReadFile(o.config)
		if err != nil {
			disk.close()
			return nil, err
		}
		conf, _ = pveconf.EnsureMapLines(data, []pveconf.Drive{drive})
	} else {
		conf = pveconf.Generate(o.vmid, o.vm, []pveconf.Drive{drive})
	}
	ps, err := newPackSpec([]vma.Config{{Name: pveconf.ConfigName, Data: conf}}, []string{drive.DevName}, []*openedDisk{disk},
		vma.WithUUID(uuid.New()), vma.WithCtime(now))
	if err != nil {
		disk.close()
		return nil, err
	}
	comp := vma.Zstd
	if uncompressed {
		comp = vma.None
	}
	return &outgoing{
		name:  vzdumpName(o.vmid, now, comp),
		total: ps.total,
		close: func() { disk.close() },
		write: func(ctx context.Context, w io.Writer, p vma.Progress) error {
			sink, err := newSink(w, comp, o.level)
			if err != nil {
				return err
			}
			if err := ps.writeTo(ctx, sink, p); err != nil {
				sink.abort()
				return err
			}
			return sink.comp.Close()
		},
	}, nil
}

// copyArchive sends an archive file, decompressing it for --stream.
func copyArchive(src *deploySource, w io.Writer, uncompressed bool, p vma.Progress) error {
	f, err := os.Open(src.path)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = progressReader{f, p}
	if uncompressed && src.comp != vma.None {
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
