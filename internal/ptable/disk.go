package ptable

import (
	"errors"
	"io"
	"io/fs"
	"time"

	"github.com/diskfs/go-diskfs/backend"
)

// disk adapts an io.ReaderAt of known size to go-diskfs' backend.File
// (fs.File, io.ReaderAt and io.Seeker), optionally as a window starting
// base bytes in. go-diskfs reads tables with ReadAt and finds the disk size
// with Seek(0, io.SeekEnd); nothing writes.
type disk struct {
	r    io.ReaderAt
	size int64 // bytes visible through the window
	base int64
	pos  int64 // for Read and Seek
}

var _ backend.File = (*disk)(nil)

var errNegative = errors.New("ptable: negative offset")

func (d *disk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errNegative
	}
	if off >= d.size {
		return 0, io.EOF
	}
	var eof error
	if int64(len(p)) > d.size-off {
		p, eof = p[:d.size-off], io.EOF
	}
	n, err := d.r.ReadAt(p, d.base+off)
	if n == len(p) {
		err = eof
	}
	return n, err
}

func (d *disk) Read(p []byte) (int, error) {
	n, err := d.ReadAt(p, d.pos)
	d.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (d *disk) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += d.pos
	case io.SeekEnd:
		offset += d.size
	default:
		return 0, errors.New("ptable: invalid whence")
	}
	if offset < 0 {
		return 0, errNegative
	}
	d.pos = offset
	return offset, nil
}

func (d *disk) Close() error { return nil }

func (d *disk) Stat() (fs.FileInfo, error) { return diskInfo{d.size}, nil }

// diskInfo describes the disk as a read-only regular file.
type diskInfo struct{ size int64 }

func (i diskInfo) Name() string       { return "disk" }
func (i diskInfo) Size() int64        { return i.size }
func (i diskInfo) Mode() fs.FileMode  { return 0o444 }
func (i diskInfo) ModTime() time.Time { return time.Time{} }
func (i diskInfo) IsDir() bool        { return false }
func (i diskInfo) Sys() any           { return nil }
