package fuzz

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
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
	paths, _ := filepath.Glob("../testdata/vectors/*.vma.*")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		// Prefixes: the engine slows to a crawl on half-megabyte inputs,
		// and a stream's start exercises the framing as well as all of it.
		f.Add(b[:min(len(b), 16<<10)])
	}
	if len(paths) < 3 {
		f.Fatal("no compressed seed archives in testdata/vectors")
	}
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
