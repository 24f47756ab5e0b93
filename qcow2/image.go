package qcow2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
)

// Image is an open qcow2 image: its virtual disk as an io.ReaderAt, plus
// its allocation map. It is immutable after Open apart from bounded caches
// with their own locks, so all methods are safe for concurrent use.
type Image struct {
	id       uint32 // names the image in the chain's shared caches
	sh       *shared
	h        *header
	r        io.ReaderAt // the qcow2 file: metadata and, usually, data
	fileSize int64
	data     io.ReaderAt // where NORMAL clusters are: r, or the external data file
	dataSize int64
	extData  bool // guest data is in an external data file

	size        int64 // virtual size
	clusterBits uint
	clusterSize int64
	l2Bits      uint // log2 of entries per L2 table
	extL2       bool
	subBits     uint  // log2 of the subcluster size (extended L2)
	l1Entries   int64 // the L1 entries that cover the virtual size
	l1          l1Window
	name        string // for errors about the backing file: Open's path, or WithName's
	backing     *layer // nil without a backing file, or when it is skipped
	skipped     bool   // the header names a backing file that SkipBacking left closed

	closers   []io.Closer
	closeOnce sync.Once
	closeErr  error
	closed    atomic.Bool
}

// shared is what all images of one backing chain use together, so that
// the chain as a whole stays within the options' bounds.
type shared struct {
	workers  int
	decoders *decoderPool
	tables   *l2Cache
	clusters clusterCache
	nextID   atomic.Uint32
}

func newShared(opts *options) *shared {
	return &shared{workers: opts.workers, decoders: newDecoderPool(opts.workers), tables: newL2Cache(opts.cacheSize)}
}

// Open opens the qcow2 image at path, a regular file or block device.
// Backing files are found relative to the directory of the image that
// names them, with OpenBackingFile unless WithBackingOpener says
// otherwise. Close closes the file.
func Open(path string, opts ...Option) (*Image, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, openFlags, 0)
	if err != nil {
		return nil, fmt.Errorf("qcow2: %w", err)
	}
	size, err := fileSize(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("qcow2: %w", err)
	}
	o.name = path
	if o.openBacking == nil {
		o.openBacking = OpenBackingFile
	}
	ch := chain{seen: map[string]bool{realPath(path): true}}
	img, err := open(f, size, o, newShared(o), ch)
	if err != nil {
		f.Close()
		return nil, err
	}
	img.closers = append(img.closers, f)
	return img, nil
}

// New reads the qcow2 image that r reads, which stays the caller's to
// close. The image's file size is taken from r when it has a Size or Stat
// method (*os.File, *bytes.Reader, *io.SectionReader), and otherwise found
// by probing reads. Backing files are opened only with WithBackingOpener,
// and Close closes them.
func New(r io.ReaderAt, opts ...Option) (*Image, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	size, err := readerSize(r)
	if err != nil {
		return nil, fmt.Errorf("qcow2: %w", err)
	}
	ch := chain{seen: map[string]bool{}}
	if o.name != "" {
		ch.seen[o.name] = true
	}
	return open(r, size, o, newShared(o), ch)
}

// open opens one image of a chain; the caches and workers come from sh.
func open(r io.ReaderAt, fileSize int64, opts *options, sh *shared, ch chain) (_ *Image, err error) {
	img := &Image{id: sh.nextID.Add(1), sh: sh, r: r, fileSize: fileSize, data: r, dataSize: fileSize, name: opts.name}
	defer func() {
		if err != nil {
			img.Close() // the files it opened so far
		}
	}()
	h, err := readHeader(r, fileSize)
	if err != nil {
		return nil, err
	}
	img.h = h
	if h.incompatible&incompatCorrupt != 0 && !opts.allowCorrupt {
		return nil, formatErr(offIncompatible, ErrCorrupt, "image is marked corrupt (WithAllowCorrupt reads it anyway)")
	}
	img.size = int64(h.size)
	img.clusterBits = uint(h.clusterBits)
	img.clusterSize = 1 << h.clusterBits
	img.l2Bits = uint(h.l2Bits())
	img.extL2 = h.incompatible&incompatExtendedL2 != 0
	img.subBits = img.clusterBits - 5
	if err := img.checkL1(); err != nil {
		return nil, err
	}
	if h.incompatible&incompatDataFile != 0 {
		if err := img.openDataFile(opts); err != nil {
			return nil, err
		}
	}
	if h.backingName != "" {
		switch opts.backing {
		case FollowBacking:
			if err := img.openBacking(h, opts, ch); err != nil {
				return nil, err
			}
		case SkipBacking:
			img.skipped = true
		default:
			return nil, img.backingErr("", ErrBackingRefused)
		}
	}
	return img, nil
}

// readHeader reads and parses cluster 0.
func readHeader(r io.ReaderAt, fileSize int64) (*header, error) {
	// The cluster size is in the header, so read the header first, then
	// the rest of cluster 0 for the extensions and the backing name.
	buf := make([]byte, min(fileSize, 512))
	if err := readFull(r, buf, 0); err != nil {
		return nil, err
	}
	if len(buf) >= offClusterBits+4 && binary.BigEndian.Uint32(buf) == magic {
		bits := binary.BigEndian.Uint32(buf[offClusterBits:])
		if bits > minClusterBits && bits <= maxClusterBits {
			buf = make([]byte, min(fileSize, int64(1)<<bits))
			if err := readFull(r, buf, 0); err != nil {
				return nil, err
			}
		}
	}
	return parseHeader(buf)
}

// checkL1 checks that the L1 entries that cover the virtual size lie
// within the file; qemu ignores the rest of a larger table. The entries
// are read when a lookup needs them (l1.go).
func (img *Image) checkL1() error {
	n := int64(img.h.l1Needed()) // at most 4 Mi entries: checked in parseHeader
	off := int64(img.h.l1Offset)
	if bytes := n * entryBytes; n > 0 && off+bytes > img.fileSize {
		return formatErr(offL1Offset, ErrTruncated, "L1 table at %#x (%d bytes) ends past the end of the file (%d bytes)", off, bytes, img.fileSize)
	}
	img.l1Entries = n
	return nil
}

// openDataFile sets up the external data file the caller supplied.
func (img *Image) openDataFile(opts *options) error {
	img.extData = true
	switch {
	case opts.dataFile != nil:
		size, err := readerSize(opts.dataFile)
		if err != nil {
			return fmt.Errorf("qcow2: data file: %w", err)
		}
		img.data, img.dataSize = opts.dataFile, size
	case opts.dataFilePath != "":
		f, err := os.Open(opts.dataFilePath)
		if err != nil {
			return fmt.Errorf("qcow2: data file: %w", err)
		}
		img.closers = append(img.closers, f)
		size, err := fileSize(f)
		if err != nil {
			return fmt.Errorf("qcow2: data file: %w", err)
		}
		img.data, img.dataSize = f, size
	default:
		return formatErr(offIncompatible, ErrNoDataFile, "header names data file %q", img.h.dataFileName)
	}
	return nil
}

// Size returns the virtual disk size in bytes.
func (img *Image) Size() int64 { return img.size }

// ClusterSize returns the cluster size in bytes.
func (img *Image) ClusterSize() int64 { return img.clusterSize }

// Version returns the qcow2 version, 2 or 3.
func (img *Image) Version() int { return int(img.h.version) }

// Compression returns the algorithm of the image's compressed clusters.
func (img *Image) Compression() Compression { return img.h.compressionType }

// ExtendedL2 reports whether the image has extended L2 entries, with 32
// subclusters per cluster.
func (img *Image) ExtendedL2() bool { return img.extL2 }

// Dirty reports whether the image's dirty bit is set: its refcounts may be
// stale (lazy refcounts, or qemu did not close it). Reading is unaffected.
func (img *Image) Dirty() bool { return img.h.incompatible&incompatDirty != 0 }

// Corrupt reports whether the image is marked corrupt; such an image opens
// only with WithAllowCorrupt.
func (img *Image) Corrupt() bool { return img.h.incompatible&incompatCorrupt != 0 }

// DataFileName returns the external data file name stored in the header,
// or "" when the image keeps its data in itself.
func (img *Image) DataFileName() string { return img.h.dataFileName }

// BackingFileName returns the backing file name stored in the header, or
// "" when the image has none. It is reported whatever WithBacking
// said; nothing is opened for it.
func (img *Image) BackingFileName() string { return img.h.backingName }

// BackingFormat returns the backing file format stored in the header
// ("qcow2", "raw", ...), or "" when the header names none.
func (img *Image) BackingFormat() string { return img.h.backingFormat }

// Backing returns the backing chain below the image, nearest first, or
// nil if it has no backing file or WithBacking skipped it.
func (img *Image) Backing() []BackingInfo {
	var out []BackingInfo
	for l := img.backing; l != nil; {
		out = append(out, l.info)
		if l.img == nil {
			break
		}
		l = l.img.backing
	}
	return out
}

// Close closes the files the image opened: its own with Open, the
// data file named by WithDataFile, and the backing chain. Reads
// after Close fail with ErrClosed.
func (img *Image) Close() error {
	img.closeOnce.Do(func() {
		img.closed.Store(true)
		var errs []error
		for i := len(img.closers) - 1; i >= 0; i-- {
			if err := img.closers[i].Close(); err != nil && !errors.Is(err, fs.ErrClosed) {
				errs = append(errs, err)
			}
		}
		img.sh.decoders.close()
		img.closeErr = errors.Join(errs...)
	})
	return img.closeErr
}

// readFull reads len(p) bytes at off of the image file; a short read is a
// truncated image.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		return formatErr(off+int64(n), ErrTruncated, "read %d of %d bytes at %#x", n, len(p), off)
	}
	return fmt.Errorf("qcow2: reading %d bytes at offset %d: %w", len(p), off, err)
}

// readerSize finds the size of what r reads: from a Size or Stat method,
// or else by a binary search with one-byte reads.
func readerSize(r io.ReaderAt) (int64, error) {
	switch s := r.(type) {
	case interface{ Size() int64 }:
		return s.Size(), nil
	case *os.File:
		return fileSize(s)
	case interface{ Stat() (fs.FileInfo, error) }:
		fi, err := s.Stat()
		if err != nil {
			return 0, err
		}
		return fi.Size(), nil
	}
	var b [1]byte
	has := func(off int64) (bool, error) {
		n, err := r.ReadAt(b[:], off)
		if n == 1 {
			return true, nil
		}
		if err == nil || err == io.EOF {
			return false, nil
		}
		return false, err
	}
	// Find a power of two past the end, then bisect: lo has a byte, hi
	// does not.
	lo, hi := int64(-1), int64(1)
	for {
		ok, err := has(hi - 1)
		if err != nil {
			return 0, err
		}
		if !ok {
			break
		}
		lo = hi - 1
		if hi > 1<<61 {
			return 0, errors.New("cannot find the size of the reader")
		}
		hi *= 2
	}
	hi--
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ok, err := has(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo + 1, nil
}
