package main

// What "vmatool create" accepts because Proxmox's "vma create" does.

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/vmatool/vmatool/vma"
)

// vmaWarning prints a warning the way vma's GLib log handler does,
// "<program>: warning: <message>", under the name vmatool was started as:
// run as "vma" (a link that lets Proxmox's scripts call it), it says "vma".
func vmaWarning(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "%s: warning: %s\n", programName(), fmt.Sprintf(format, args...))
}

func programName() string {
	return strings.TrimSuffix(filepath.Base(os.Args[0]), ".exe")
}

// sectorDisk is a disk whose size is not a multiple of 512 as vma create
// sees it: QEMU measures images in whole sectors, rounding up, and reads
// the part of the last sector past the end of the file as zeros.
type sectorDisk struct {
	vma.Disk
	size int64
}

// sparseSectorDisk keeps the holes of a disk that knows where its data is.
type sparseSectorDisk struct {
	*sectorDisk
	inner vma.SparseDisk
}

// wholeSectors returns d, or d rounded up to whole sectors.
func wholeSectors(d vma.Disk) vma.Disk {
	if d.Size()%512 == 0 {
		return d
	}
	p := &sectorDisk{Disk: d, size: (d.Size() + 511) / 512 * 512}
	if sd, ok := d.(vma.SparseDisk); ok {
		return sparseSectorDisk{p, sd}
	}
	return p
}

func (d *sectorDisk) Size() int64 { return d.size }

func (d *sectorDisk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= d.size {
		return 0, io.EOF
	}
	want := len(p)
	p = p[:min(int64(len(p)), d.size-off)]
	inner := d.Disk.Size()
	n := 0
	if off < inner {
		m := int(min(int64(len(p)), inner-off))
		var err error
		if n, err = d.Disk.ReadAt(p[:m], off); n < m {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
	}
	clear(p[n:])
	if len(p) < want {
		return len(p), io.EOF
	}
	return len(p), nil
}

func (d sparseSectorDisk) NextData(off int64) (start, end int64, err error) {
	if off >= d.inner.Size() {
		return d.size, d.size, nil
	}
	start, end, err = d.inner.NextData(off)
	if start >= d.inner.Size() {
		return d.size, d.size, err
	}
	return start, end, err
}

// appendConfig adds c to cfgs, except when the same config (same name,
// same bytes) is there already: vma create stores a file given twice
// twice, but an archive with two configs of one name cannot be extracted
// without one overwriting the other, so vmatool refuses such archives and
// stores the config once. Two different configs of one name are still
// refused, by the writer.
func appendConfig(cfgs []vma.Config, c vma.Config) []vma.Config {
	for _, have := range cfgs {
		if have.Name == c.Name && bytes.Equal(have.Data, c.Data) {
			return cfgs
		}
	}
	return append(cfgs, c)
}

// warnPositionalDevice is vma create's warning for a device given without
// -d format=..., word for word.
func warnPositionalDevice(w io.Writer, spec string) {
	vmaWarning(w, "Specifying a device without a format is deprecated - use '-d format=<format>:%s'", spec)
}
