package fuzz

import (
	"os"
	"path/filepath"
	"testing"
)

// seedLimit keeps seeds small: Go's fuzzing engine crawls on
// half-megabyte inputs, and a file's first 64 KiB cover its framing and
// first extents.
const seedLimit = 64 << 10

// addFileSeeds adds the first seedLimit bytes of each testdata file that
// matches pattern, and fails if there are fewer than atLeast of them.
func addFileSeeds(f *testing.F, pattern string, atLeast int) {
	paths, _ := filepath.Glob(filepath.Join("..", "testdata", pattern))
	if len(paths) < atLeast {
		f.Fatalf("%d seed files match testdata/%s, want at least %d", len(paths), pattern, atLeast)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:min(len(b), seedLimit)])
	}
}
