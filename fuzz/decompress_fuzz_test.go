package fuzz

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/vmatool/vmatool/vma"
)

// maxFuzzStream bounds how much one input may decompress to, so a
// decompression bomb costs the fuzzer bounded time.
const maxFuzzStream = 1 << 20

// FuzzDecompress feeds arbitrary bytes through compression detection
// (zstd, gzip, lzop, bzip2 or none) into the reader and Verify. Nothing may
// panic; whatever fails must fail with an error.
func FuzzDecompress(f *testing.F) {
	addFileSeeds(f, "vectors/*.vma.*", 4, compressedSeedLimit)
	f.Fuzz(func(t *testing.T, data []byte) {
		verifyCompressed(t, data, "")
	})
}

// The per-codec targets keep every input inside one decoder: the first
// bytes are that codec's magic whatever the mutator did to them, so no
// execution is spent on detection failing. Each is seeded from the real
// compressed archive in testdata/vectors.

// FuzzZstd fuzzes the zstd front end (vzdump's .vma.zst).
func FuzzZstd(f *testing.F) { fuzzCodec(f, vma.Zstd, "\x28\xb5\x2f\xfd", "vectors/*.vma.zst") }

// FuzzGzip fuzzes the gzip front end (.vma.gz).
func FuzzGzip(f *testing.F) { fuzzCodec(f, vma.Gzip, "\x1f\x8b", "vectors/*.vma.gz") }

// FuzzLzop fuzzes the lzop container and LZO1X decoder (.vma.lzo).
func FuzzLzop(f *testing.F) {
	fuzzCodec(f, vma.Lzop, "\x89LZO\x00\r\n\x1a\n", "vectors/*.vma.lzo")
}

// FuzzBzip2 fuzzes the bzip2 front end (.vma.bz2, which restore accepts).
func FuzzBzip2(f *testing.F) { fuzzCodec(f, vma.Bzip2, "BZh", "vectors/*.vma.bz2") }

func fuzzCodec(f *testing.F, c vma.Compression, magic, seeds string) {
	addFileSeeds(f, seeds, 1, compressedSeedLimit)
	f.Fuzz(func(t *testing.T, data []byte) {
		in := make([]byte, 0, len(magic)+len(data))
		in = append(in, magic...)
		in = append(in, data[min(len(data), len(magic)):]...)
		verifyCompressed(t, in, c)
	})
}

// verifyCompressed runs data through detection, the decoder, the reader and
// Verify, each bounded. want, if set, is the compression detection must
// find.
func verifyCompressed(t *testing.T, data []byte, want vma.Compression) {
	dr, got, err := vma.Decompress(bytes.NewReader(data))
	if want != "" && got != want {
		t.Fatalf("detected %q, want %q", got, want)
	}
	if err != nil {
		return
	}
	defer dr.Close()
	r, err := vma.NewReader(io.LimitReader(dr, maxFuzzStream))
	if err != nil {
		return
	}
	if _, err := vma.Verify(context.Background(), r); errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}
