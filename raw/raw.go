package raw

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"github.com/vmatool/vmatool/internal/filekind"
)

// ErrNotDisk is returned by Open and New for files that cannot be a disk:
// directories, pipes, sockets and character devices have no size or no
// random access.
var ErrNotDisk = errors.New("not a regular file or block device")

// errNegativeOffset is returned by NextData for an offset below zero, a
// caller bug rather than a property of the disk.
var errNegativeOffset = errors.New("raw: negative offset")

// Disk is a raw image file or block device opened for reading. It is
// immutable after Open, so all methods are safe for concurrent use.
type Disk struct {
	f    *os.File
	conn syscall.RawConn // keeps the descriptor alive while sysSeek runs on it
	name string
	size int64
	// holes reports whether the file answers SEEK_DATA (or, on Windows,
	// the allocated-range query). When false, the whole disk is reported
	// as data.
	holes bool
}

// Open opens the regular file or block device at path read-only.
//
// A size that is not a multiple of 512 is accepted; consumers that need
// sector alignment check it themselves.
func Open(path string) (*Disk, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("raw: %w", err)
	}
	d, err := newDisk(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	return d, nil
}

// New makes a Disk of an already open file, which must be a regular file or
// a block device open for reading. The Disk takes ownership of f: Close
// closes it. If New fails, f is left open.
func New(f *os.File) (*Disk, error) {
	return newDisk(f, f.Name())
}

func newDisk(f *os.File, name string) (*Disk, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("raw: %w", err)
	}
	conn, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("raw: %s: %w", name, err)
	}
	d := &Disk{f: f, conn: conn, name: name}
	switch mode := fi.Mode(); {
	case mode.IsRegular():
		d.size = fi.Size()
		d.holes, err = d.probeHoles()
		if err != nil {
			return nil, fmt.Errorf("raw: %s: %w", name, err)
		}
	case mode&fs.ModeDevice != 0 && mode&fs.ModeCharDevice == 0:
		// Stat reports 0 for block devices. Their SEEK_DATA, where it
		// exists, says "all data" anyway, so holes stays false and saves
		// the system calls.
		d.size, err = f.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, fmt.Errorf("raw: %s: size of block device: %w", name, err)
		}
		if d.size == 0 {
			// Linux measures a block device this way; macOS answers 0,
			// which would pass for an empty disk.
			return nil, fmt.Errorf("raw: %s: block device reports size 0 (nothing attached, or a system such as macOS that does not give device sizes through lseek)", name)
		}
	default:
		return nil, fmt.Errorf("raw: %s: is %s, %w", name, filekind.Of(mode), ErrNotDisk)
	}
	return d, nil
}

// probeHoles asks for the first data at or after 0. Any answer other than
// "not supported" means the filesystem tracks holes; an error other than
// that is a real I/O failure worth reporting at Open.
func (d *Disk) probeHoles() (bool, error) {
	_, err := d.seek(0, whenceData)
	switch {
	case err == nil, errors.Is(err, errNoData):
		return true, nil
	case errors.Is(err, errNoSeekData):
		return false, nil
	default:
		return false, err
	}
}

// ReadAt reads len(p) bytes at offset off, as io.ReaderAt. It uses pread,
// so it neither uses nor moves the file offset and may run concurrently
// with itself and NextData.
func (d *Disk) ReadAt(p []byte, off int64) (int, error) {
	return d.f.ReadAt(p, off)
}

// Size returns the size of the disk in bytes, as measured at Open.
func (d *Disk) Size() int64 { return d.size }

// Close closes the underlying file.
func (d *Disk) Close() error { return d.f.Close() }

// NextData returns the first range [start, end) at or after off that may
// hold non-zero bytes; everything in [off, start) reads as zeros. When no
// data remains it returns start == end == Size(). The range may be
// conservative (holding zeros), never optimistic.
//
// Ranges follow the filesystem's allocation, so their granularity is its
// block or page size. On filesystems and devices without SEEK_DATA (or,
// on Windows, FSCTL_QUERY_ALLOCATED_RANGES) the one range is [off, Size()).
func (d *Disk) NextData(off int64) (start, end int64, err error) {
	switch {
	case off < 0:
		return 0, 0, fmt.Errorf("%w %d", errNegativeOffset, off)
	case off >= d.size:
		return d.size, d.size, nil
	case !d.holes:
		return off, d.size, nil
	}
	// lseek moves the shared file offset, but SEEK_DATA and SEEK_HOLE
	// answer from their offset argument alone, and reads use pread, so
	// concurrent callers cannot disturb each other. (Windows's query
	// moves no offset at all.)
	start, err = d.seek(off, whenceData)
	switch {
	case errors.Is(err, errNoData):
		return d.size, d.size, nil
	case errors.Is(err, errNoSeekData):
		// The file moved to a filesystem without SEEK_DATA under us
		// (e.g. an overlay); degrade instead of failing.
		return off, d.size, nil
	case err != nil:
		return 0, 0, fmt.Errorf("raw: %s: seek data at %d: %w", d.name, off, err)
	}
	if start >= d.size {
		// Data past the size measured at Open: the file grew. The disk
		// is defined by that size, so nothing is left.
		return d.size, d.size, nil
	}
	end, err = d.seek(start, whenceHole)
	if err != nil || end > d.size {
		// No answer (or the file grew): claim data up to the end, which
		// is conservative.
		end = d.size
	}
	if end <= start {
		// A racing writer punched a hole between the two calls; one
		// byte of conservatism keeps the caller making progress.
		end = min(start+1, d.size)
	}
	return start, end, nil
}

// seek runs sysSeek on the descriptor (on Windows, the handle) through
// RawConn, which keeps it from being closed and reused while the call runs.
func (d *Disk) seek(off int64, whence int) (int64, error) {
	var (
		ret  int64
		serr error
	)
	err := d.conn.Control(func(fd uintptr) {
		ret, serr = sysSeek(fd, off, whence)
	})
	if err != nil {
		return 0, err
	}
	return ret, serr
}

// Allocated returns the number of bytes in data ranges, as NextData
// reports them: the bytes a sparse-aware reader will read. Without hole
// support it equals Size.
func (d *Disk) Allocated() (int64, error) {
	var total int64
	for off := int64(0); off < d.size; {
		start, end, err := d.NextData(off)
		if err != nil {
			return total, err
		}
		total += end - start
		off = end
	}
	return total, nil
}
