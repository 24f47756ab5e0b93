package codec

import (
	"bufio"
	"bytes"
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

// DetectLen is how many leading bytes Detect needs to tell every
// compression apart.
const DetectLen = 9

// Detect names the compression whose magic starts head, or None. A zstd
// stream may start with a skippable frame, as pzstd's do.
func Detect(head []byte) Compression {
	for _, m := range magics {
		if len(head) >= len(m.magic) && string(head[:len(m.magic)]) == m.magic {
			return m.c
		}
	}
	if len(head) >= 4 && binary.LittleEndian.Uint32(head)&^0xf == zstdSkippableMagic {
		return Zstd
	}
	return None
}

// readBufferSize is the buffer between the compressed input and the
// decoders: large reads keep the syscalls of a file or pipe off the
// profile, where 64 KiB reads took an eighth of a parallel zstd decode.
const readBufferSize = 1 << 20

// plainBufferSize is the buffer over a stream that is not compressed:
// cat's size, so that the data a reader skips (verify) is copied once,
// into a buffer that stays in the CPU cache. Verify of the bench's 672 MiB
// .vma took 143 ms of CPU with readBufferSize and a copy out of it, 130 ms
// with this and Discard, against cat's 117 ms (medians of six, perf stat).
const plainBufferSize = 128 << 10

// plainReader is an uncompressed stream. It keeps bufio's Discard, which
// skips data in the buffer without a second copy, for readers that do
// not keep what they skip.
type plainReader struct{ *bufio.Reader }

func (plainReader) Close() error { return nil }

// DefaultMaxWindow is the largest zstd window a reader accepts unless told
// otherwise. A zstd decoder holds a window of history, so this is what
// decoding costs: vzdump's zstd (level 3) uses 2 MiB, zstd -19 8 MiB, and
// the default keeps a whole vmatool run within 64 MiB. Archives compressed
// with --long or --ultra need more, and say how much.
const DefaultMaxWindow = 8 << 20

// ReadOptions configure NewReader. The zero value means the defaults.
type ReadOptions struct {
	// MaxWindow is the largest zstd window accepted (0: DefaultMaxWindow).
	// A frame that needs more fails with a *WindowError.
	MaxWindow int64
	// Workers decode independent zstd frames and lzop blocks in parallel
	// (0: GOMAXPROCS).
	Workers int
}

// NewReader looks at the first bytes of r and, if they are the magic of a
// known compression, returns a reader of the decompressed stream; otherwise
// the bytes pass through. The file name plays no part. A zstd stream's
// first frame is checked against MaxWindow before NewReader returns. Close
// stops decoder goroutines; it does not close r.
func NewReader(r io.Reader, o ReadOptions) (io.ReadCloser, Compression, error) {
	if o.MaxWindow == 0 {
		o.MaxWindow = DefaultMaxWindow
	}
	if o.MaxWindow < zstdMinWindow {
		return nil, None, fmt.Errorf("max window %d is below zstd's smallest window, %d", o.MaxWindow, zstdMinWindow)
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	// The first bytes are read on their own, so that the buffer over the
	// rest can be sized for what they say the stream is.
	head := make([]byte, DetectLen)
	n, err := io.ReadFull(r, head)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return nil, None, fmt.Errorf("reading the first bytes: %w", err)
	}
	head = head[:n]
	c := Detect(head)
	src := io.MultiReader(bytes.NewReader(head), r)
	switch c {
	case Zstd:
		z, err := newZstdReader(bufio.NewReaderSize(src, readBufferSize), src, o.Workers, o.MaxWindow)
		if err != nil {
			return nil, c, err
		}
		return z, c, nil
	case Gzip:
		g, err := gzip.NewReader(bufio.NewReaderSize(src, readBufferSize))
		if err != nil {
			return nil, c, fmt.Errorf("gzip: %w", err)
		}
		return g, c, nil
	case Lzop:
		l, err := newLzopReader(bufio.NewReaderSize(src, readBufferSize), o.Workers)
		if err != nil {
			return nil, c, err
		}
		return l, c, nil
	case Bzip2:
		return io.NopCloser(bzip2.NewReader(bufio.NewReaderSize(src, readBufferSize))), c, nil
	}
	return plainReader{bufio.NewReaderSize(src, plainBufferSize)}, None, nil
}

// WriteOptions configure NewWriter. The zero value means the defaults.
type WriteOptions struct {
	// Level is numbered as the command-line tools number it; 0 means
	// zstd's fastest encoder, or gzip 6.
	Level int
	// Workers compress in parallel (0: GOMAXPROCS).
	Workers int
}

// NewWriter returns a writer that compresses into w on several cores.
// Close flushes the compressed stream; it does not close w. The bytes
// written depend only on the input and the options, never on timing or
// on the number of workers.
func NewWriter(w io.Writer, c Compression, o WriteOptions) (io.WriteCloser, error) {
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
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
		if o.Level != 0 {
			el = zstd.EncoderLevelFromZstd(o.Level)
		}
		return newFrameWriter(w, el, o.Workers)
	case Gzip:
		level := o.Level
		if level == 0 {
			level = gzip.DefaultCompression
		}
		g, err := pgzip.NewWriterLevel(w, level)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		// 1 MiB blocks, one in flight per core: parallel without
		// unbounded buffering.
		if err := g.SetConcurrency(1<<20, o.Workers); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return g, nil
	}
	return nil, fmt.Errorf("cannot write %s compression", c)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
