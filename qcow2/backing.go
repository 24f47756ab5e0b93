package qcow2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// BackingOpener opens the backing file an image names. name is exactly as
// the header stores it; parent is the Name of the image that names it
// (the path given to Open or WithName's name, then BackingFile.Name down
// the chain), so that a relative name can be resolved against the parent's
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

// OpenBackingFile is the BackingOpener Open uses by default. It opens
// name read-only from the file system, relative to the directory of parent
// unless it is absolute, and keys it by its real path so that loops through
// symbolic links are found.
//
// The name comes from an untrusted header, so only a regular file is
// followed: a FIFO, device, socket or directory is refused with
// ErrNotRegular, before it is opened. The open itself never waits (a FIFO
// put in place meanwhile opens at once, see openFlags), and the type is
// checked again on the opened descriptor. Like qemu, it follows names
// that lead out of parent's directory; a caller that must not read other
// files uses WithBacking, or lists the chain with Image.Backing.
func OpenBackingFile(parent, name string) (*BackingFile, error) {
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(parent), name)
	}
	// Look before opening: opening a device can act (a tape rewinds, a
	// watchdog starts), and opening a FIFO waits for a writer.
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, notRegular(path, fi.Mode())
	}
	f, err := os.OpenFile(path, openFlags, 0)
	if err != nil {
		return nil, err
	}
	// The name may lead elsewhere by now: check what was opened.
	if fi, err = f.Stat(); err == nil && !fi.Mode().IsRegular() {
		err = notRegular(path, fi.Mode())
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &BackingFile{ReaderAt: f, Size: fi.Size(), Name: path, Key: realPath(path), Closer: f}, nil
}

// notRegular is ErrNotRegular for path, with what it is instead.
func notRegular(path string, mode fs.FileMode) error {
	var what string
	switch {
	case mode.IsDir():
		what = "a directory"
	case mode&fs.ModeNamedPipe != 0:
		what = "a named pipe (FIFO)"
	case mode&fs.ModeSocket != 0:
		what = "a socket"
	case mode&fs.ModeCharDevice != 0:
		what = "a character device"
	case mode&fs.ModeDevice != 0:
		what = "a block device"
	default:
		what = "of type " + mode.Type().String()
	}
	return fmt.Errorf("%s is %s, %w", path, what, ErrNotRegular)
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
			return fmt.Errorf("reading %d bytes at offset %d: %w", want, off, err)
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

// wrapBackingErr names img's backing file in an error met reading it,
// unless the error already names an image further down.
func (img *Image) wrapBackingErr(err error) error {
	var be *BackingError
	if errors.As(err, &be) {
		return err
	}
	return img.backingErr(img.backing.info.Path, err)
}

// backingErr is a *BackingError about img's backing file.
func (img *Image) backingErr(path string, err error) error {
	return &BackingError{Image: img.name, Offset: int64(img.h.backingOffset), Name: img.h.backingName, Path: path, Err: err}
}

// openBacking opens the backing file of img as a layer.
func (img *Image) openBacking(h *header, opts *options, ch chain) error {
	name := h.backingName
	if ch.depth >= opts.maxDepth {
		return img.backingErr("", fmt.Errorf("%w (limit %d)", ErrBackingDepth, opts.maxDepth))
	}
	if opts.openBacking == nil {
		return img.backingErr("", fmt.Errorf("%w: no BackingOpener (WithBackingOpener)", ErrBackingFile))
	}
	bf, err := opts.openBacking(opts.name, name)
	if err != nil {
		return img.backingErr("", fmt.Errorf("%w: %w", ErrBackingFile, err))
	}
	if bf == nil || bf.ReaderAt == nil {
		return img.backingErr("", fmt.Errorf("%w: opener returned no file", ErrBackingFile))
	}
	if bf.Closer != nil {
		img.closers = append(img.closers, bf.Closer)
	}
	key := bf.Key
	if key == "" {
		key = bf.Name
	}
	if ch.seen[key] {
		return img.backingErr(bf.Name, fmt.Errorf("%w (%s)", ErrBackingLoop, key))
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
		sub.name = bf.Name
		sub.dataFile, sub.dataFilePath = nil, ""
		seen := make(map[string]bool, len(ch.seen)+1)
		for k := range ch.seen {
			seen[k] = true
		}
		seen[key] = true
		bimg, err := open(bf.ReaderAt, bf.Size, &sub, img.sh, chain{depth: ch.depth + 1, seen: seen})
		if err != nil {
			// An error further down already names the image it is
			// about; one about this backing file is named here.
			var be *BackingError
			if errors.As(err, &be) {
				return err
			}
			return img.backingErr(bf.Name, err)
		}
		img.closers = append(img.closers, bimg)
		l.img, l.r = bimg, bimg
		l.info.Size = bimg.Size()
	default:
		return img.backingErr(bf.Name, fmt.Errorf("%w: format %q (want qcow2 or raw)", ErrUnsupported, format))
	}
	img.backing = l
	return nil
}
