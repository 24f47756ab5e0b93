package qcow2

import (
	"io"
	"runtime"
)

// Defaults for the zero values of Options.
const (
	// DefaultMaxBackingDepth bounds backing chains; qemu has no limit, but
	// real chains are a handful of images deep and each level costs an
	// open file and a cache share.
	DefaultMaxBackingDepth = 16
	// DefaultCacheSize holds 128 L2 tables of 64 KiB, which map 64 GiB of a
	// 64 KiB-cluster image: enough for any access pattern short of random
	// reads over a huge disk.
	DefaultCacheSize = 8 << 20
	// MaxCacheSize caps Options.CacheSize: memory stays bounded whatever
	// the caller or the image asks for.
	MaxCacheSize = 32 << 20
)

// Options tune Open and OpenFile. The zero value reads a standalone image
// with GOMAXPROCS decompression workers.
type Options struct {
	// Name is the image's own name, usually its path. It is passed to
	// OpenBacking as the parent of the image's backing file, so that a
	// relative backing name resolves against the image's directory.
	// OpenFile sets it.
	Name string

	// OpenBacking opens the backing file of an image, and of each image
	// down the chain. When nil, Open refuses images with a backing file
	// (ErrBackingFile) and OpenFile uses OpenBackingFile.
	OpenBacking BackingOpener

	// Backing says whether to follow the image's backing file at all:
	// FollowBacking (the zero value), SkipBacking or RefuseBacking. A
	// backing file's name comes from an untrusted header; a caller that
	// only describes an image, or that must not read other files, says
	// so here.
	Backing BackingMode

	// DataFile holds the guest data of an image that keeps it in an
	// external data file (incompatible feature bit 2). The name stored in
	// such an image is never opened: it comes from an untrusted header,
	// and qemu resolves it against the working directory. Without
	// DataFile or DataFilePath such an image is refused with
	// ErrNoDataFile. Images that have no external data file ignore it.
	DataFile io.ReaderAt

	// DataFilePath is opened as the external data file when DataFile is
	// nil. Close closes it.
	DataFilePath string

	// AllowCorrupt opens images whose corrupt bit is set, as qemu does
	// for read-only opens. Their metadata may be inconsistent; reads still
	// fail cleanly on anything that does not fit the file.
	AllowCorrupt bool

	// MaxBackingDepth is the longest backing chain accepted below the
	// image; 0 means DefaultMaxBackingDepth, a negative value refuses any
	// backing file.
	MaxBackingDepth int

	// Workers is the number of goroutines that decompress clusters, shared
	// by the whole backing chain; 0 means GOMAXPROCS.
	Workers int

	// CacheSize is the memory, in bytes, for cached L2 tables, shared by
	// the whole backing chain; 0 means DefaultCacheSize. It is capped at
	// MaxCacheSize, and a few tables are always cached.
	CacheSize int64
}

// BackingMode is what Open does with the backing file an image names.
type BackingMode uint8

const (
	// FollowBacking opens the backing chain with OpenBacking, down to
	// MaxBackingDepth files. Image.Backing lists it.
	FollowBacking BackingMode = iota
	// SkipBacking opens the image alone: no backing file is opened.
	// BackingFileName and BackingFormat still report what the header
	// names, and Extents and NextData work (NextData counts the
	// unallocated ranges as data, since the backing file may hold some),
	// but reading a range that the backing file would supply fails with
	// ErrBackingSkipped.
	SkipBacking
	// RefuseBacking refuses an image that names a backing file, with
	// ErrBackingRefused. Unknown modes do the same.
	RefuseBacking
)

func (o *Options) maxDepth() int {
	switch {
	case o.MaxBackingDepth == 0:
		return DefaultMaxBackingDepth
	case o.MaxBackingDepth < 0:
		return 0
	}
	return o.MaxBackingDepth
}

func (o *Options) workers() int {
	if o.Workers > 0 {
		return o.Workers
	}
	return runtime.GOMAXPROCS(0)
}

func (o *Options) cacheSize() int64 {
	switch {
	case o.CacheSize <= 0:
		return DefaultCacheSize
	case o.CacheSize > MaxCacheSize:
		return MaxCacheSize
	}
	return o.CacheSize
}
