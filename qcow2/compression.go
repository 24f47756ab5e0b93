package qcow2

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zstd"
)

// Compression is the algorithm of an image's compressed clusters.
type Compression uint8

// Compression types, as stored in the header's compression_type byte.
const (
	// CompressionZlib is qemu's name for raw DEFLATE (RFC 1951) with no
	// zlib header or checksum. Version 2 images always use it.
	CompressionZlib Compression = 0
	// CompressionZstd is one or more zstd frames per cluster, with no
	// length prefix.
	CompressionZstd Compression = 1
)

// String returns qemu's name for the compression type: "zlib" or "zstd".
func (c Compression) String() string {
	switch c {
	case CompressionZlib:
		return "zlib"
	case CompressionZstd:
		return "zstd"
	}
	return fmt.Sprintf("Compression(%d)", uint8(c))
}

// zstdMaxWindow bounds the memory a hostile zstd frame can make a decoder
// allocate. qemu's frames are single-segment with the window equal to the
// cluster size, at most 2 MiB.
const zstdMaxWindow = 8 << 20

// decoder decompresses clusters of any image of a chain; each worker holds
// one at a time. Its state is reused between clusters so that decoding
// allocates nothing once warm.
type decoder struct {
	src bytes.Reader // an io.ByteReader, so flate does not buffer ahead
	fl  io.ReadCloser
	zs  *zstd.Decoder
	in  []byte // compressed bytes of the current cluster
	out []byte // one cluster, for reads that need only part of it
}

// decode inflates src into dst, which is exactly one cluster. Decoding
// stops when dst is full, as in qemu: the bytes after the compressed
// stream are the next cluster's or padding.
func (d *decoder) decode(c Compression, dst, src []byte) error {
	d.src.Reset(src)
	var r io.Reader
	switch c {
	case CompressionZlib:
		if d.fl == nil {
			d.fl = flate.NewReader(&d.src)
		} else if err := d.fl.(flate.Resetter).Reset(&d.src, nil); err != nil {
			return err
		}
		r = d.fl
	case CompressionZstd:
		if d.zs == nil {
			zs, err := zstd.NewReader(nil,
				zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderMaxWindow(zstdMaxWindow),
				zstd.WithDecoderMaxMemory(zstdMaxWindow))
			if err != nil {
				return err
			}
			d.zs = zs
		}
		// The streaming decoder, not DecodeAll: DecodeAll wants the
		// input to end with the frame, and a cluster's range ends with
		// the next cluster's bytes or padding.
		if err := d.zs.Reset(&d.src); err != nil {
			return err
		}
		r = d.zs
	default:
		return fmt.Errorf("unknown compression type %d", c)
	}
	_, err := io.ReadFull(r, dst)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("compressed data ends before %d bytes were produced", len(dst))
	}
	return err
}

// input returns a buffer for n compressed bytes.
func (d *decoder) input(n int) []byte {
	if cap(d.in) < n {
		d.in = make([]byte, n)
	}
	return d.in[:n]
}

// cluster returns a buffer for one decompressed cluster.
func (d *decoder) cluster(n int) []byte {
	if cap(d.out) < n {
		d.out = make([]byte, n)
	}
	return d.out[:n]
}

func (d *decoder) close() {
	if d.zs != nil {
		d.zs.Close()
	}
}

// decoderPool lends decoders to workers. It makes at most max of them, so
// concurrent readers together never decode on more than max goroutines and
// never hold more than max decoders' memory.
type decoderPool struct {
	free chan *decoder
	mu   sync.Mutex
	made int
}

func newDecoderPool(max int) *decoderPool {
	return &decoderPool{free: make(chan *decoder, max)}
}

func (p *decoderPool) get() *decoder {
	select {
	case d := <-p.free:
		return d
	default:
	}
	p.mu.Lock()
	if p.made < cap(p.free) {
		p.made++
		p.mu.Unlock()
		return &decoder{}
	}
	p.mu.Unlock()
	return <-p.free
}

func (p *decoderPool) put(d *decoder) { p.free <- d }

// close releases the decoders that are back in the pool. A read still
// running can make new ones, so it never waits for a released decoder.
func (p *decoderPool) close() {
	for {
		select {
		case d := <-p.free:
			d.close()
			p.mu.Lock()
			p.made--
			p.mu.Unlock()
		default:
			return
		}
	}
}
