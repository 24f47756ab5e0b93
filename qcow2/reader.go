package qcow2

import (
	"errors"
	"io"
)

// Chunk sizes for Reader.WriteTo: big enough that each chunk spans several
// clusters per worker, so all workers decompress at once.
const (
	minStreamChunk = 4 << 20
	maxStreamChunk = 32 << 20
)

// Reader reads an Image from start to end as an io.Reader. Its WriteTo
// (used by io.Copy) reads large chunks and reads the next one while the
// current one is written, so decompression keeps every worker busy.
type Reader struct {
	img *Image
	off int64
}

// NewReader returns a Reader positioned at the start of the virtual disk.
func (img *Image) NewReader() *Reader { return &Reader{img: img} }

// Read reads up to len(p) bytes, all in one ReadAt: pass large buffers to
// decompress in parallel.
func (r *Reader) Read(p []byte) (int, error) {
	if r.off >= r.img.size {
		return 0, io.EOF
	}
	n, err := r.img.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// Seek sets the offset of the next Read or WriteTo.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.img.size
	default:
		return 0, errors.New("qcow2: invalid whence")
	}
	if offset < 0 {
		return 0, errNegativeOffset
	}
	r.off = offset
	return offset, nil
}

// WriteTo writes the rest of the virtual disk to w.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	img := r.img
	chunk := roundUp(min(max(4*int64(img.sh.workers)*img.clusterSize, minStreamChunk), maxStreamChunk), img.clusterSize)

	type block struct {
		buf []byte
		n   int
		err error
	}
	// Two buffers circulate: one being filled, one being written.
	free := make(chan []byte, 2)
	free <- make([]byte, chunk)
	free <- make([]byte, chunk)
	full := make(chan block, 1)
	done := make(chan struct{})
	defer close(done)
	go func() {
		defer close(full)
		for off := r.off; off < img.size; {
			var buf []byte
			select {
			case buf = <-free:
			case <-done:
				return
			}
			n := int(min(chunk, img.size-off))
			_, err := img.ReadAt(buf[:n], off)
			if err == io.EOF {
				err = nil
			}
			select {
			case full <- block{buf: buf, n: n, err: err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
			off += int64(n)
		}
	}()
	var written int64
	for b := range full {
		if b.err != nil {
			return written, b.err
		}
		m, err := w.Write(b.buf[:b.n])
		written += int64(m)
		r.off += int64(m)
		if err == nil && m < b.n {
			err = io.ErrShortWrite
		}
		if err != nil {
			return written, err
		}
		free <- b.buf
	}
	return written, nil
}
