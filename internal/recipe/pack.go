package recipe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/vmatool/vmatool/internal/pveconf"
	"github.com/vmatool/vmatool/vma"
)

// Defaults for the zero values of Spec.
const (
	DefaultVMID    = 100
	DefaultStorage = "local-lvm"
)

// ErrWritten is a second WriteArchive on one Pack: the disks are read
// once, into one archive.
var ErrWritten = errors.New("recipe: the archive was already written")

// Pack is an archive ready to be written: its disks open, its configs
// final, its header checked. Close it when done, written or not.
type Pack struct {
	// Devices are the archive's devices, in order.
	Devices []*Device
	// Configs are the configs as stored: with #qmdump#map lines, and a
	// generated qemu-server.conf first when Spec had none.
	Configs []vma.Config
	// Unattached lists the drive keys that the given qemu-server.conf has
	// no line for: qmrestore restores those disks but attaches them to
	// nothing, which a caller may want to warn about.
	Unattached []string
	// PostRestore are the settings that complete a generated config once
	// the archive is restored (see pveconf.Generated.PostRestore); empty
	// when Spec brought its own qemu-server.conf.
	PostRestore []pveconf.Setting
	// UUID and Ctime are the archive's identity.
	UUID  uuid.UUID
	Ctime time.Time
	// VMID is the one Spec named, or DefaultVMID.
	VMID int
	// Size is the sum of the devices' sizes: what a progress display
	// counts toward.
	Size int64

	w       *vma.Writer
	out     *deferredWriter
	written bool
}

// deferredWriter lets the vma.Writer be set up, and so check every config
// and device, before the output exists.
type deferredWriter struct{ w io.Writer }

func (d *deferredWriter) Write(p []byte) (int, error) {
	if d.w == nil {
		return 0, errors.New("recipe: archive written before its output was given")
	}
	return d.w.Write(p)
}

// Open opens every disk of spec and checks everything about the archive
// that can be checked before writing it: any refusal (an unreadable or
// malformed image, an archive given as a disk, a size not a multiple of
// 512, a name used twice, too many disks, an oversized config) happens
// here. On error nothing stays open.
func Open(spec Spec, opts ...Option) (*Pack, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	p := &Pack{VMID: spec.VMID, out: &deferredWriter{}}
	if p.VMID == 0 {
		p.VMID = DefaultVMID
	}
	storage := spec.Storage
	if storage == "" {
		storage = DefaultStorage
	}
	if err := pveconf.ValidateStorage(storage); err != nil {
		return nil, &SpecError{Msg: err.Error(), Err: err} // it goes into drive and map lines
	}
	ok := false
	defer func() {
		if !ok {
			p.Close()
		}
	}()

	disks, err := deviceNames(spec)
	if err != nil {
		return nil, err
	}
	drives := make([]pveconf.Drive, len(disks))
	for i, d := range disks {
		dev, err := openDisk(d.Disk, o)
		if err != nil {
			return nil, err
		}
		dev.Name, dev.Key = d.name, d.key
		if spec.Verbatim {
			// As vma create sees it: QEMU measures images in whole
			// sectors, reading past the end of the file as zeros.
			dev.Disk = wholeSectors(dev.Disk)
		}
		p.Devices = append(p.Devices, dev)
		p.Size += dev.Disk.Size()
		drives[i] = pveconf.Drive{Key: d.key, DevName: d.name, Storage: storage, Format: "raw", Size: dev.Disk.Size()}
	}
	p.Configs = append([]vma.Config(nil), spec.Configs...)
	if !spec.Verbatim {
		if err := p.withMapLines(drives, spec.VM); err != nil {
			return nil, err
		}
	}
	p.identify(o)

	p.w, err = vma.NewWriter(p.out, vma.WithUUID(p.UUID), vma.WithCtime(p.Ctime))
	if err != nil {
		return nil, err
	}
	for _, c := range p.Configs {
		if err := p.w.AddConfig(c.Name, c.Data); err != nil {
			return nil, err
		}
	}
	for _, d := range p.Devices {
		if d.ID, err = p.w.AddDevice(d.Name, d.Disk.Size()); err != nil {
			return nil, fmt.Errorf("%s: %w", d.Path, err)
		}
	}
	ok = true
	return p, nil
}

type namedDisk struct {
	Disk
	key, name string
}

// deviceNames gives each disk its drive key and device name; unnamed
// disks take the lowest free scsiN.
func deviceNames(spec Spec) ([]namedDisk, error) {
	out := make([]namedDisk, len(spec.Disks))
	if spec.Verbatim {
		for i, d := range spec.Disks {
			out[i] = namedDisk{Disk: d, name: d.Name} // the vma.Writer checks it
		}
		return out, nil
	}
	used := map[string]bool{}
	disks := append([]Disk(nil), spec.Disks...)
	for i, d := range disks {
		if d.Name == "" {
			continue
		}
		key, _, err := pveconf.ParseDriveName(d.Name)
		if err != nil {
			return nil, &SpecError{Msg: err.Error()}
		}
		if used[key] {
			return nil, specErrorf("disk name %s used twice", key)
		}
		used[key] = true
		disks[i].Name = key
	}
	assignNames(disks, used)
	for i, d := range disks {
		out[i] = namedDisk{Disk: d, key: d.Name, name: pveconf.DevName(d.Name)}
	}
	return out, nil
}

// withMapLines makes sure p.Configs has a qemu-server.conf that maps
// every disk: the given one with map lines added, or one generated from
// vm, first.
func (p *Pack) withMapLines(drives []pveconf.Drive, vm *pveconf.VMOptions) error {
	for i, c := range p.Configs {
		if c.Name != pveconf.ConfigName {
			continue
		}
		p.Configs[i].Data, p.Unattached = pveconf.EnsureMapLines(c.Data, drives)
		return nil
	}
	o := pveconf.VMOptions{Serial: true}
	if vm != nil {
		o = *vm
	}
	g, err := pveconf.Generate(p.VMID, o, drives)
	if err != nil {
		return &SpecError{Msg: err.Error(), Err: err}
	}
	p.Configs = append([]vma.Config{{Name: pveconf.ConfigName, Data: g.Config}}, p.Configs...)
	p.PostRestore = g.PostRestore
	return nil
}

// Name is the file name vzdump would give this archive with compression
// c: see VzdumpName.
func (p *Pack) Name(c vma.Compression) string { return VzdumpName(p.VMID, p.Ctime, c) }

// VzdumpName is the file name vzdump gives a backup of guest vmid taken
// at t, in local time, compressed with c:
// vzdump-qemu-<vmid>-<YYYY_MM_DD-HH_MM_SS>.vma[.zst|.gz|.lzo]. Proxmox's
// storage layer lists and restores only files named so.
func VzdumpName(vmid int, t time.Time, c vma.Compression) string {
	return fmt.Sprintf("vzdump-qemu-%d-%s.vma%s", vmid, t.Local().Format("2006_01_02-15_04_05"), c.Ext())
}

// WriteArchive writes the archive to w, compressed with c (vma.None for a
// plain archive) at level (0: the codec's default; see vma.WithLevel):
// every disk is read once, holes skipped, on the vma package's pipeline,
// and compressed on every core. progress, which may be nil, counts the
// bytes of the devices. It does not close w. A Pack writes one archive;
// a second call fails with ErrWritten.
func (p *Pack) WriteArchive(ctx context.Context, w io.Writer, c vma.Compression, level int, progress vma.Progress) error {
	if p.written {
		return ErrWritten
	}
	p.written = true
	cw, err := vma.Compress(w, c, vma.WithLevel(level))
	if err != nil {
		return err
	}
	p.out.w = cw
	for i, d := range p.Devices {
		if err := p.w.WriteDisk(ctx, p.Devices[i].ID, d.Disk, progress); err != nil {
			cw.Close() // stops the compressor; the output is unusable anyway
			return fmt.Errorf("%s: %w", d.Path, err)
		}
	}
	if err := p.w.Close(); err != nil {
		cw.Close()
		return err
	}
	return cw.Close()
}

// OnCluster makes WriteArchive call f for every cluster it writes, in
// archive order (see vma.Writer.OnCluster); for statistics such as those
// "vma create -v" prints.
func (p *Pack) OnCluster(f func(vma.Cluster)) error { return p.w.OnCluster(f) }

// StoredBytes returns the bytes of non-zero blocks WriteArchive stored for
// device i (an index into Devices).
func (p *Pack) StoredBytes(i int) int64 { return p.w.StoredBytes(p.Devices[i].ID) }

// Close closes every disk.
func (p *Pack) Close() error {
	var errs []error
	for _, d := range p.Devices {
		errs = append(errs, d.Close())
	}
	p.Devices = nil
	return errors.Join(errs...)
}
