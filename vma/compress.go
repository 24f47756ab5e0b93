package vma

import (
	"bufio"
	"compress/bzip2"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// Compression names a whole-stream compression around an archive. VMA has
// no compression of its own; vzdump pipes the archive through a compressor.
type Compression string

// Compressions vzdump writes (and bzip2, which restore still accepts).
const (
	None  Compression = "none"
	Zstd  Compression = "zstd"
	Gzip  Compression = "gzip"
	Lzop  Compression = "lzop"
	Bzip2 Compression = "bzip2"
)

// Ext returns the file name suffix vzdump uses for c (".zst", ".gz", ...).
func (c Compression) Ext() string {
	switch c {
	case Zstd:
		return ".zst"
	case Gzip:
		return ".gz"
	case Lzop:
		return ".lzo"
	case Bzip2:
		return ".bz2"
	}
	return ""
}

var magics = []struct {
	c     Compression
	magic string
}{
	{Zstd, "\x28\xb5\x2f\xfd"},
	{Gzip, "\x1f\x8b"},
	{Lzop, "\x89LZO\x00\r\n\x1a\n"},
	{Bzip2, "BZh"},
}

// DefaultMaxWindow is the largest zstd window Decompress accepts unless
// WithMaxWindow says otherwise. A zstd decoder holds a window of history,
// so this is what decoding costs: vzdump's zstd (level 3) uses 2 MiB,
// zstd -19 8 MiB, and the default keeps a whole vmatool run within 64 MiB.
// Archives compressed with --long or --ultra need more, and say how much.
const DefaultMaxWindow = 8 << 20

// DecompressOption configures Decompress.
type DecompressOption func(*decompressOptions) error

type decompressOptions struct {
	maxWindow int64
}

// WithMaxWindow sets the largest zstd window Decompress accepts, in bytes
// (at least 1 KiB, zstd's smallest). A frame that needs more fails with a
// *WindowError; one that fits costs about its window in memory.
func WithMaxWindow(n int64) DecompressOption {
	return func(o *decompressOptions) error {
		if n < zstdMinWindow {
			return fmt.Errorf("vma: max window %d is below zstd's smallest window, %d", n, zstdMinWindow)
		}
		o.maxWindow = n
		return nil
	}
}

// Decompress looks at the first bytes of r and, if they are the magic of a
// known compression, returns a reader of the decompressed stream; otherwise
// the bytes pass through. The file name plays no part. A zstd stream may
// start with a skippable frame, as pzstd's do; the first frame's window is
// checked before Decompress returns. Close releases decoder goroutines; it
// does not close r.
func Decompress(r io.Reader, opts ...DecompressOption) (io.ReadCloser, Compression, error) {
	o := decompressOptions{maxWindow: DefaultMaxWindow}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, None, err
		}
	}
	br := bufio.NewReaderSize(r, 1<<16)
	head, err := br.Peek(9)
	if err != nil && err != io.EOF {
		return nil, None, fmt.Errorf("vma: reading the first bytes: %w", err)
	}
	c := None
	for _, m := range magics {
		if len(head) >= len(m.magic) && string(head[:len(m.magic)]) == m.magic {
			c = m.c
			break
		}
	}
	if len(head) >= 4 && binary.LittleEndian.Uint32(head)&^0xf == zstdSkippableMagic {
		c = Zstd
	}
	switch c {
	case Zstd:
		frames := newZstdFrames(br, o.maxWindow)
		if err := frames.start(); err != nil {
			return nil, c, err
		}
		// One synchronous decoder: vzdump's archives are a single frame,
		// whose blocks depend on each other, and the decoder's own
		// goroutine pipeline measured slower than decoding inline (bench/).
		// The frames were checked against the same limit already.
		d, err := zstd.NewReader(frames, zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxWindow(uint64(o.maxWindow)), zstd.WithDecoderMaxMemory(uint64(o.maxWindow)))
		if err != nil {
			return nil, c, fmt.Errorf("vma: zstd: %w", err)
		}
		return zstdReadCloser{d}, c, nil
	case Gzip:
		g, err := gzip.NewReader(br)
		if err != nil {
			return nil, c, fmt.Errorf("vma: gzip: %w", err)
		}
		return g, c, nil
	case Lzop:
		l, err := newLzopReader(br)
		if err != nil {
			return nil, c, err
		}
		return io.NopCloser(l), c, nil
	case Bzip2:
		return io.NopCloser(bzip2.NewReader(br)), c, nil
	}
	return io.NopCloser(br), None, nil
}

type zstdReadCloser struct{ *zstd.Decoder }

func (z zstdReadCloser) Close() error { z.Decoder.Close(); return nil }

// Compress returns a writer that compresses into w with all cores. Close
// flushes the compressed stream; it does not close w. level 0 means the
// default: zstd's fastest encoder, gzip 6; other levels are numbered as the
// command-line tools number them.
func Compress(w io.Writer, c Compression, level int) (io.WriteCloser, error) {
	switch c {
	case None, "":
		return nopWriteCloser{w}, nil
	case Zstd:
		// By default the fastest encoder. On the bench's mixed image,
		// encoding at the default level alone took as long as zstd -T0 -3
		// for the whole job, leaving no room for reading the disk; the
		// fastest one spends a third less CPU for output 2.4% larger
		// than zstd -3's.
		el := zstd.SpeedFastest
		if level != 0 {
			el = zstd.EncoderLevelFromZstd(level)
		}
		return newFrameWriter(w, el, runtime.GOMAXPROCS(0))
	case Gzip:
		if level == 0 {
			level = gzip.DefaultCompression
		}
		g, err := pgzip.NewWriterLevel(w, level)
		if err != nil {
			return nil, fmt.Errorf("vma: gzip: %w", err)
		}
		// 1 MiB blocks, one in flight per core: parallel without
		// unbounded buffering.
		if err := g.SetConcurrency(1<<20, runtime.GOMAXPROCS(0)); err != nil {
			return nil, fmt.Errorf("vma: gzip: %w", err)
		}
		return g, nil
	}
	return nil, fmt.Errorf("vma: cannot write %s compression", c)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
