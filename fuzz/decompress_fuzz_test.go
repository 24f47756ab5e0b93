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
const maxFuzzStream = 4 << 20

// FuzzDecompress feeds arbitrary bytes through compression detection
// (zstd, gzip, lzop, bzip2 or none) into the reader and Verify. Nothing may
// panic; whatever fails must fail with an error.
func FuzzDecompress(f *testing.F) {
	addFileSeeds(f, "vectors/*.vma.*", 3)
	f.Fuzz(func(t *testing.T, data []byte) {
		dr, _, err := vma.Decompress(bytes.NewReader(data))
		if err != nil {
			return
		}
		defer dr.Close()
		r, err := vma.NewReader(io.LimitReader(dr, maxFuzzStream))
		if err != nil {
			return
		}
		if _, err := vma.Verify(context.Background(), r); err == nil {
			return
		} else if errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	})
}
