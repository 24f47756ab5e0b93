package vma

import "io"

// Disk is a device image the writer packs: random access plus a size in bytes.
// *os.File does not satisfy it directly (it has no Size method); use the raw
// package, which also reports holes.
type Disk interface {
	io.ReaderAt
	// Size is the device size in bytes. It must be a positive multiple of 512.
	Size() int64
}

// SparseDisk is a Disk that knows where its data is. The writer asks it for
// data ranges and never reads the rest, so holes in a raw file and
// unallocated or zero clusters of a qcow2 image cost nothing but their
// mask-0 entries in the archive.
//
// The method uses only built-in types so that image packages can satisfy it
// without importing vma.
type SparseDisk interface {
	Disk
	// NextData returns the first range [start, end) at or after off that may
	// hold non-zero bytes; everything in [off, start) reads as zeros. When no
	// data remains it returns start == end == Size(). The range may be
	// conservative (holding zeros), never optimistic.
	NextData(off int64) (start, end int64, err error)
}
