package deploy

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/vmatool/vmatool/internal/pveconf"
	"github.com/vmatool/vmatool/internal/recipe"
	"github.com/vmatool/vmatool/vma"
)

// Source is what deploy sends: a disk image (raw or qcow2) to pack, or a
// VMA archive (compressed or not) to send as it is. It is told by content,
// never by name.
type Source struct {
	Path        string
	Format      string          // recipe.FormatRaw, FormatQcow2 or FormatVMA
	Compression vma.Compression // an archive's; vma.None for an image
	Size        int64           // of the file
	// Header is an archive's header: its configs and devices. Nil for an
	// image.
	Header *vma.Header

	decompress []vma.DecompressOption
}

// OpenSource identifies path and, for an archive, reads its header, so
// that a bad file is refused before any target is planned. decompress
// are the options for reading a compressed archive (its zstd window).
func OpenSource(path string, decompress ...vma.DecompressOption) (*Source, error) {
	id, err := recipe.Identify(path, decompress...)
	if err != nil {
		return nil, err
	}
	s := &Source{Path: id.Path, Format: id.Format, Compression: id.Compression, Size: id.Size, decompress: decompress}
	if !id.Archive() {
		return s, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dr, _, err := vma.Decompress(f, decompress...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer dr.Close()
	r, err := vma.NewReader(dr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := r.Header().CheckNames(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if _, ok := r.Header().Config(pveconf.ConfigName); !ok {
		return nil, fmt.Errorf("%s: the archive has no %s, which qmrestore requires", path, pveconf.ConfigName)
	}
	s.Header = r.Header()
	return s, nil
}

// Archive reports whether the source is a VMA archive.
func (s *Source) Archive() bool { return s.Format == recipe.FormatVMA }

// archiveConfig returns a config stored in an archive source.
func (s *Source) archiveConfig(name string) ([]byte, bool) {
	if s.Header == nil {
		return nil, false
	}
	return s.Header.Config(name)
}

// payload is what one target receives: the archive (an image packed with
// the target's settings, or the source archive) and its config, and the
// devices an import uploads.
type payload struct {
	src    *Source
	pack   *recipe.Pack // an image source's, else nil
	config []byte       // qemu-server.conf as the archive holds it
	// postRestore are the settings that complete a generated config
	// once restored (pveconf.Generated.PostRestore): postrestore.go.
	postRestore []pveconf.Setting
	devices     []payloadDevice
	vmid        int
	now         time.Time
	total       int64 // bytes the progress counts toward
}

// payloadDevice is a disk of the payload.
type payloadDevice struct {
	key, devName string
	size         int64
	dev          *recipe.Device // an image source's opened disk
}

// openPayload opens what target t receives from src: for an image, the
// disk with the target's settings and config (every check recipe.Open
// makes happens here); for an archive, its header. chain, if set, gets
// the line that shows a qcow2 image's backing chain.
func openPayload(src *Source, t *Target, now time.Time, chain func(string)) (*payload, error) {
	p := &payload{src: src, vmid: t.VMID, now: now}
	if src.Archive() {
		if t.Config != "" {
			return nil, fmt.Errorf("config %s: an archive brings its own config", t.Config)
		}
		if len(t.Disks) > 0 {
			return nil, fmt.Errorf("disk %s: an archive brings its own disks; extra disks go with a disk image", t.Disks[0])
		}
		p.config, _ = src.Header.Config(pveconf.ConfigName)
		keys := mapLines(p.config)
		for _, d := range src.Header.Devices {
			if d.IsVMState() {
				continue
			}
			p.devices = append(p.devices, payloadDevice{key: keys[d.Name], devName: d.Name, size: d.Size})
		}
		p.total = src.Size
		return p, nil
	}
	spec := recipe.Spec{Disks: []recipe.Disk{{Name: "scsi0", Path: src.Path, DataFile: t.DataFile}}, VMID: t.VMID, Storage: t.Storage}
	extra, err := t.extraDisks()
	if err != nil {
		return nil, err
	}
	spec.Disks = append(spec.Disks, extra...)
	if t.Config != "" {
		cfgs, err := recipe.ReadConfigs(t.Config)
		if err != nil {
			return nil, err
		}
		cfgs[0].Name = pveconf.ConfigName // whatever the file is called, it is the VM's config
		spec.Configs = cfgs
	} else {
		vm := t.VMOptions()
		spec.VM = &vm
	}
	opts := []recipe.Option{recipe.WithBacking(recipe.BackingMode(t.NoBacking, true)), recipe.WithNow(now)}
	if chain != nil {
		opts = append(opts, recipe.WithChain(chain))
	}
	pack, err := recipe.Open(spec, opts...)
	if err != nil {
		return nil, err
	}
	p.pack = pack
	p.postRestore = pack.PostRestore
	for _, c := range pack.Configs {
		if c.Name == pveconf.ConfigName {
			p.config = c.Data
		}
	}
	for _, d := range pack.Devices {
		p.devices = append(p.devices, payloadDevice{key: d.Key, devName: d.Name, size: d.Disk.Size(), dev: d})
	}
	p.total = pack.Size
	return p, nil
}

func (p *payload) close() {
	if p.pack != nil {
		p.pack.Close()
	}
}

// archiveName is the vzdump name of the archive compressed with c.
func (p *payload) archiveName(c vma.Compression) string {
	if p.pack != nil {
		return p.pack.Name(c)
	}
	return recipe.VzdumpName(p.vmid, p.now, c)
}

// sendCompression is the compression of what an upload sends: an
// archive as it is, an image packed with zstd.
func (p *payload) sendCompression() vma.Compression {
	if p.pack == nil {
		return p.src.Compression
	}
	return vma.Zstd
}

// writeArchive writes the archive to w compressed with c at level:
// packing an image, copying an archive that already has compression c,
// or recompressing one that has another. progress counts source bytes.
func (p *payload) writeArchive(ctx context.Context, w io.Writer, c vma.Compression, level int, progress vma.Progress) error {
	if p.pack != nil {
		return p.pack.WriteArchive(ctx, w, c, level, progress)
	}
	f, err := os.Open(p.src.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = &progressReader{ctx: ctx, r: f, p: progress}
	if c == p.src.Compression {
		_, err = io.Copy(w, r)
		return err
	}
	if p.src.Compression != vma.None {
		dr, _, err := vma.Decompress(r, p.src.decompress...)
		if err != nil {
			return err
		}
		defer dr.Close()
		r = dr
	}
	if c == vma.None {
		_, err = io.Copy(w, r)
		return err
	}
	var copts []vma.CompressOption
	if level > 0 {
		copts = append(copts, vma.WithLevel(level))
	}
	cw, err := vma.Compress(w, c, copts...)
	if err != nil {
		return err
	}
	if _, err := io.Copy(cw, r); err != nil {
		cw.Close()
		return err
	}
	return cw.Close()
}

// progressReader counts what it reads and stops once ctx is done.
type progressReader struct {
	ctx context.Context
	r   io.Reader
	p   vma.Progress
}

func (pr *progressReader) Read(b []byte) (int, error) {
	if err := pr.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := pr.r.Read(b)
	if pr.p != nil && n > 0 {
		pr.p.Update(int64(n))
	}
	return n, err
}
