package qcow2

import (
	"fmt"
	"io"
	"runtime"
)

// Defaults of the reader's options.
const (
	// DefaultMaxBackingDepth bounds backing chains; qemu has no limit, but
	// real chains are a handful of images deep and each level costs an
	// open file and a cache share.
	DefaultMaxBackingDepth = 16
	// DefaultCacheSize holds 128 L2 tables of 64 KiB, which map 64 GiB of a
	// 64 KiB-cluster image: enough for any access pattern short of random
	// reads over a huge disk.
	DefaultCacheSize = 8 << 20
	// MaxCacheSize caps WithCacheSize: memory stays bounded whatever the
	// caller or the image asks for.
	MaxCacheSize = 32 << 20
)

// Option configures Open and New. Without options an image is read with
// its backing chain (Open only), GOMAXPROCS decompression workers and
// DefaultCacheSize of L2 tables.
type Option func(*options) error

type options struct {
	name         string
	openBacking  BackingOpener
	backing      BackingMode
	dataFile     io.ReaderAt
	dataFilePath string
	allowCorrupt bool
	maxDepth     int
	workers      int
	cacheSize    int64
}

func newOptions(opts []Option) (*options, error) {
	o := &options{backing: FollowBacking, maxDepth: DefaultMaxBackingDepth, workers: runtime.GOMAXPROCS(0), cacheSize: DefaultCacheSize}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	return o, nil
}

func invalidOption(format string, args ...any) error {
	return fmt.Errorf("qcow2: "+format+": %w", append(args, ErrInvalidOption)...)
}

// WithName gives the image that New reads a name, usually its path: it
// is passed to the BackingOpener as the parent of the image's backing
// file, so that a relative backing name resolves against the image's
// directory, and it names the image in errors. Open uses the path.
func WithName(name string) Option {
	return func(o *options) error { o.name = name; return nil }
}

// WithBackingOpener sets how backing files are opened, for the image and
// each image down the chain. Open uses OpenBackingFile by default; New
// has no default, and refuses an image with a backing file
// (ErrBackingFile) unless given one.
func WithBackingOpener(fn BackingOpener) Option {
	return func(o *options) error {
		if fn == nil {
			return invalidOption("nil BackingOpener")
		}
		o.openBacking = fn
		return nil
	}
}

// BackingMode is what Open and New do with the backing file an image
// names.
type BackingMode uint8

const (
	// FollowBacking, the default, opens the backing chain with the
	// BackingOpener, down to the maximum depth. Image.Backing lists it.
	FollowBacking BackingMode = iota
	// SkipBacking opens the image alone: no backing file is opened.
	// BackingFileName and BackingFormat still report what the header
	// names, and Extents and NextData work (NextData counts the
	// unallocated ranges as data, since the backing file may hold some),
	// but reading a range that the backing file would supply fails with
	// ErrBackingSkipped.
	SkipBacking
	// RefuseBacking refuses an image that names a backing file, with
	// ErrBackingRefused.
	RefuseBacking
)

// WithBacking says whether to follow the image's backing file at all. A
// backing file's name comes from an untrusted header; a caller that only
// describes an image, or that must not read other files, says so here.
func WithBacking(m BackingMode) Option {
	return func(o *options) error {
		if m > RefuseBacking {
			return invalidOption("unknown backing mode %d", m)
		}
		o.backing = m
		return nil
	}
}

// WithDataFile names the external data file that holds the guest data of
// an image that keeps it apart (incompatible feature bit 2); Open and New
// open it, and Close closes it. The name stored in such an image is never
// opened: it comes from an untrusted header, and qemu resolves it against
// the working directory. Without WithDataFile or WithDataFileReader such
// an image is refused with ErrNoDataFile; other images ignore it.
func WithDataFile(path string) Option {
	return func(o *options) error {
		if path == "" {
			return invalidOption("empty data file name")
		}
		o.dataFile, o.dataFilePath = nil, path
		return nil
	}
}

// WithDataFileReader is WithDataFile for a data file the caller has open.
func WithDataFileReader(r io.ReaderAt) Option {
	return func(o *options) error {
		if r == nil {
			return invalidOption("nil data file")
		}
		o.dataFile, o.dataFilePath = r, ""
		return nil
	}
}

// WithAllowCorrupt opens images whose corrupt bit is set, as qemu does for
// read-only opens. Their metadata may be inconsistent; reads still fail
// cleanly on anything that does not fit the file.
func WithAllowCorrupt() Option {
	return func(o *options) error { o.allowCorrupt = true; return nil }
}

// WithMaxBackingDepth sets the longest backing chain accepted below the
// image (default DefaultMaxBackingDepth); 0 refuses any backing file with
// ErrBackingDepth.
func WithMaxBackingDepth(n int) Option {
	return func(o *options) error {
		if n < 0 {
			return invalidOption("max backing depth %d", n)
		}
		o.maxDepth = n
		return nil
	}
}

// WithWorkers sets how many goroutines decompress clusters, shared by the
// whole backing chain (default GOMAXPROCS).
func WithWorkers(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return invalidOption("workers %d, want at least 1", n)
		}
		o.workers = n
		return nil
	}
}

// WithCacheSize sets the memory, in bytes, for cached L2 tables, shared by
// the whole backing chain (default DefaultCacheSize). It is capped at
// MaxCacheSize, and a few tables are always cached.
func WithCacheSize(n int64) Option {
	return func(o *options) error {
		if n < 1 {
			return invalidOption("cache size %d, want at least 1", n)
		}
		o.cacheSize = min(n, MaxCacheSize)
		return nil
	}
}
