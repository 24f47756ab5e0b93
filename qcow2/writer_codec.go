package qcow2

import (
	"bytes"
	"fmt"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zstd"
)

// zlibWindow is the deflate window qemu compresses with (windowBits -12),
// and, more to the point, the only one it decompresses: qemu inflates with
// a 4 KiB window, so a match further back would not decode.
const zlibWindow = 4096

// codec compresses clusters on any number of goroutines at once.
type codec struct {
	kind Compression
	zstd *zstd.Encoder      // EncodeAll is safe for concurrent use
	fl   chan *flate.Writer // free list, one writer per worker at most
}

func newCodec(kind Compression, clusterSize int64, workers int) (*codec, error) {
	c := &codec{kind: kind}
	switch kind {
	case CompressionZstd:
		// The fastest level: it compresses nix store contents within a
		// few percent of qemu's default level, at several times the
		// speed. Each cluster is one frame with its size, like qemu's;
		// no checksum, as qemu writes none.
		enc, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(workers),
			zstd.WithWindowSize(max(int(clusterSize), zstd.MinWindowSize)),
			zstd.WithEncoderCRC(false),
			zstd.WithSingleSegment(true))
		if err != nil {
			return nil, fmt.Errorf("qcow2: zstd: %w", err)
		}
		c.zstd = enc
	case CompressionZlib:
		c.fl = make(chan *flate.Writer, workers)
	default:
		return nil, fmt.Errorf("qcow2: compression type %v: %w", kind, ErrInvalidOption)
	}
	return c, nil
}

// appendWriter is an io.Writer that appends to b, for flate.
type appendWriter struct{ b []byte }

func (a *appendWriter) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

// compress appends the compressed form of src to dst; aw is the caller's,
// reused so that compressing allocates nothing.
func (c *codec) compress(dst, src []byte, aw *appendWriter) ([]byte, error) {
	if c.zstd != nil {
		return c.zstd.EncodeAll(src, dst), nil
	}
	var fw *flate.Writer
	select {
	case fw = <-c.fl:
	default:
		var err error
		if fw, err = flate.NewWriterWindow(nil, zlibWindow); err != nil {
			return nil, err
		}
	}
	aw.b = dst
	fw.Reset(aw)
	_, err := fw.Write(src)
	if err == nil {
		err = fw.Close()
	}
	fw.Reset(nil)
	select {
	case c.fl <- fw:
	default:
	}
	dst, aw.b = aw.b, nil
	if err != nil {
		return nil, fmt.Errorf("qcow2: deflate: %w", err)
	}
	return dst, nil
}

func (c *codec) close() {
	if c.zstd != nil {
		c.zstd.Close()
	}
	for {
		select {
		case <-c.fl:
		default:
			return
		}
	}
}

// zeroPage is compared against to find clusters of zeros.
var zeroPage [4096]byte

// allZero reports whether b holds only zeros. bytes.Equal runs the
// runtime's vectorised memequal.
func allZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeroPage))
		if !bytes.Equal(b[:n], zeroPage[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}
