package vma

import (
	"io"

	"github.com/vmatool/vmatool/internal/codec"
)

// Compression names a whole-stream compression around an archive. VMA has
// no compression of its own; vzdump pipes the archive through a compressor.
type Compression = codec.Compression

// Compressions vzdump writes (and bzip2, which restore still accepts).
const (
	None  = codec.None
	Zstd  = codec.Zstd
	Gzip  = codec.Gzip
	Lzop  = codec.Lzop
	Bzip2 = codec.Bzip2
)

// DefaultMaxWindow is the largest zstd window Decompress accepts unless
// WithMaxWindow says otherwise: vzdump's zstd uses 2 MiB, zstd -19 8 MiB.
// Archives compressed with --long or --ultra need more, and say how much.
const DefaultMaxWindow = codec.DefaultMaxWindow

// WindowError reports a zstd frame that needs a larger window than the
// decoder was allowed (see WithMaxWindow); it matches ErrWindowTooLarge.
type WindowError = codec.WindowError

// ErrWindowTooLarge reports a zstd frame whose window, the history its
// decoder must hold, is above the limit.
var ErrWindowTooLarge = codec.ErrWindowTooLarge

// DecompressOption configures Decompress.
type DecompressOption func(*codec.ReadOptions) error

// WithMaxWindow sets the largest zstd window Decompress accepts, in bytes
// (at least 1 KiB, zstd's smallest). A frame that needs more fails with a
// *WindowError; one that fits costs about its window in memory.
func WithMaxWindow(n int64) DecompressOption {
	return func(o *codec.ReadOptions) error { o.MaxWindow = n; return nil }
}

// Decompress looks at the first bytes of r and, if they are the magic of a
// known compression (zstd, gzip, lzop, bzip2), returns a reader of the
// decompressed stream; otherwise the bytes pass through. The file name
// plays no part. Independent zstd frames (as vmatool writes them) and lzop
// blocks are decoded on every core, and a Reader made on the returned
// stream itself reads them where they were decoded: Verify skips their
// data without copying it, and Extract writes straight from them. Close
// stops the decoder's goroutines; it does not close r.
func Decompress(r io.Reader, opts ...DecompressOption) (io.ReadCloser, Compression, error) {
	var o codec.ReadOptions
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, None, err
		}
	}
	return codec.NewReader(r, o)
}

// CompressOption configures Compress.
type CompressOption func(*codec.WriteOptions) error

// WithLevel sets the compression level, numbered as the command-line tools
// number it; the default is zstd's fastest encoder, or gzip 6.
func WithLevel(level int) CompressOption {
	return func(o *codec.WriteOptions) error { o.Level = level; return nil }
}

// Compress returns a writer that compresses into w with c on every core;
// zstd is written as independent frames. The output depends only on the
// input and the options. Close flushes the compressed stream; it does not
// close w.
func Compress(w io.Writer, c Compression, opts ...CompressOption) (io.WriteCloser, error) {
	var o codec.WriteOptions
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	return codec.NewWriter(w, c, o)
}
