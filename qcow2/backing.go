package qcow2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// BackingOpener opens the backing file an image names. name is exactly as
// the header stores it; parent is the Name of the image that names it
// (Options.Name for the image given to Open, then BackingFile.Name down the
// chain), so that a relative name can be resolved against the parent's
// directory as qemu does.
type BackingOpener func(parent, name string) (*BackingFile, error)

// BackingFile is a backing file opened by a BackingOpener.
type BackingFile struct {
	// ReaderAt reads the file: a qcow2 image or a raw disk.
	ReaderAt io.ReaderAt
	// Size is the file's size in bytes. For a raw backing file it is the
	// disk size: reads past it return zeros.
	Size int64
	// Name is the resolved name, passed as parent when this file names a
	// backing file of its own.
	Name string
	// Key identifies the file for loop detection: two files of one chain
	// with the same Key are a loop. Empty means Name.
	Key string
	// Closer, if not nil, is closed by Image.Close.
	Closer io.Closer
}

// BackingInfo describes one backing file of an image.
type BackingInfo struct {
	Name   string // as stored in the header of the image above it
	Path   string // as the BackingOpener resolved it
	Format string // "qcow2" or "raw"
	Size   int64  // the size the image above reads: virtual size for qcow2, file size for raw
}

// OpenBackingFile is the BackingOpener OpenFile uses by default. It opens
// name read-only from the file system, relative to the directory of parent
// unless it is absolute, and keys it by its real path so that loops through
// symbolic links are found.
func OpenBackingFile(parent, name string) (*BackingFile, error) {
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(parent), name)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	size, err := fileSize(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &BackingFile{ReaderAt: f, Size: size, Name: path, Key: realPath(path), Closer: f}, nil
}

// fileSize is the size of a regular file or block device; Stat reports 0
// for the latter.
func fileSize(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if fi.Mode().IsRegular() {
		return fi.Size(), nil
	}
	if fi.Mode()&os.ModeDevice != 0 {
		return f.Seek(0, io.SeekEnd)
	}
	return 0, fmt.Errorf("%s: not a regular file or block device", f.Name())
}

// realPath is the absolute path with symbolic links resolved, or the best
// approximation of it.
func realPath(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		return real
	}
	return path
}

// layer is a backing file as its overlay sees it: zeros past its size.
type layer struct {
	info BackingInfo
	r    io.ReaderAt
	img  *Image     // set when the backing file is a qcow2 image
	hint sparseDisk // set when a raw backing file knows its holes
}

// sparseDisk is what vma.SparseDisk and raw disks offer: a map of data
// ranges. A raw backing file that has it lets NextData skip its holes.
type sparseDisk interface {
	NextData(off int64) (start, end int64, err error)
}

// readAt fills p from the backing file at off, with zeros past its end.
func (l *layer) readAt(p []byte, off int64) error {
	n := 0
	if off < l.info.Size {
		want := min(int64(len(p)), l.info.Size-off)
		m, err := l.r.ReadAt(p[:want], off)
		if int64(m) < want {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("qcow2: backing file %q at offset %d: %w: %w", l.info.Path, off, ErrBackingFile, err)
		}
		n = int(want)
	}
	clear(p[n:])
	return nil
}

// nextData is Image.nextData for the backing file: the first range in
// [off, limit) that may hold data, or (limit, limit).
func (l *layer) nextData(off, limit int64) (start, end int64, cut bool, err error) {
	// Past its end the backing file reads as zeros.
	stop := min(limit, l.info.Size)
	if off >= stop {
		return limit, limit, false, nil
	}
	switch {
	case l.img != nil:
		s, e, cut, err := l.img.nextData(off, stop)
		if err != nil {
			return 0, 0, false, err
		}
		if s >= stop {
			return limit, limit, cut, nil
		}
		return s, e, cut, nil
	case l.hint != nil:
		s, e, err := l.hint.NextData(off)
		if err != nil {
			return 0, 0, false, err
		}
		s, e = max(s, off), min(e, stop)
		if s >= e {
			return limit, limit, false, nil
		}
		return s, e, false, nil
	}
	return off, stop, false, nil
}

// chain is what opening a backing chain needs to remember from the levels
// above: how deep it is and which files it has seen.
type chain struct {
	depth int
	seen  map[string]bool
}

// openBacking opens the backing file of img as a layer.
func (img *Image) openBacking(h *header, opts *Options, ch chain) error {
	name := h.backingName
	if ch.depth >= opts.maxDepth() {
		return fmt.Errorf("qcow2: backing file %q: %w (limit %d)", name, ErrBackingDepth, opts.maxDepth())
	}
	if opts.OpenBacking == nil {
		return fmt.Errorf("qcow2: backing file %q: %w: no BackingOpener in Options", name, ErrBackingFile)
	}
	bf, err := opts.OpenBacking(opts.Name, name)
	if err != nil {
		return fmt.Errorf("qcow2: backing file %q: %w: %w", name, ErrBackingFile, err)
	}
	if bf == nil || bf.ReaderAt == nil {
		return fmt.Errorf("qcow2: backing file %q: %w: opener returned no file", name, ErrBackingFile)
	}
	if bf.Closer != nil {
		img.closers = append(img.closers, bf.Closer)
	}
	key := bf.Key
	if key == "" {
		key = bf.Name
	}
	if ch.seen[key] {
		return fmt.Errorf("qcow2: backing file %q (%s): %w", name, key, ErrBackingLoop)
	}
	format := h.backingFormat
	if format == "" {
		// Images older than qemu 6.1 may lack the format; qemu probes.
		format = "raw"
		var m [4]byte
		if n, _ := bf.ReaderAt.ReadAt(m[:], 0); n == 4 && binary.BigEndian.Uint32(m[:]) == magic {
			format = "qcow2"
		}
	}
	l := &layer{
		info: BackingInfo{Name: name, Path: bf.Name, Format: format, Size: bf.Size},
		r:    bf.ReaderAt,
	}
	switch format {
	case "raw":
		l.hint, _ = bf.ReaderAt.(sparseDisk)
	case "qcow2":
		sub := *opts
		sub.Name = bf.Name
		sub.DataFile, sub.DataFilePath = nil, ""
		seen := make(map[string]bool, len(ch.seen)+1)
		for k := range ch.seen {
			seen[k] = true
		}
		seen[key] = true
		bimg, err := open(bf.ReaderAt, bf.Size, &sub, img.sh, chain{depth: ch.depth + 1, seen: seen})
		if err != nil {
			var fe *FormatError
			if errors.As(err, &fe) {
				return fmt.Errorf("qcow2: backing file %q: %w", name, err)
			}
			return err
		}
		img.closers = append(img.closers, bimg)
		l.img, l.r = bimg, bimg
		l.info.Size = bimg.Size()
	default:
		return formatErr(offBackingOffset, ErrUnsupported, "backing file %q has format %q (want qcow2 or raw)", name, format)
	}
	img.backing = l
	return nil
}
