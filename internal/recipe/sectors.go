package recipe

import (
	"io"

	"github.com/vmatool/vmatool/vma"
)

// sectorDisk is a disk whose size is not a multiple of 512 as vma create
// sees it (Spec.Verbatim): QEMU measures images in whole sectors, rounding up, and reads
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
