package fuzz

import (
	"os"
	"path/filepath"
	"testing"
)

// Seed limits. Go's fuzzing engine crawls on big inputs: it minimises
// every new input it finds by running it once per byte it tries to drop,
// for up to a minute, so the mutants of a big seed eat the run. An
// archive's first 16 KiB hold its header and first extent header; the
// first 64 KiB of a compressed file hold its framing and first blocks.
const (
	archiveSeedLimit    = 16 << 10
	compressedSeedLimit = 64 << 10
)

// addFileSeeds adds the first limit bytes of each testdata file that
// matches pattern, and fails if there are fewer than atLeast of them.
func addFileSeeds(f *testing.F, pattern string, atLeast, limit int) {
	paths, _ := filepath.Glob(filepath.Join("..", "testdata", pattern))
	if len(paths) < atLeast {
		f.Fatalf("%d seed files match testdata/%s, want at least %d", len(paths), pattern, atLeast)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:min(len(b), limit)])
	}
}
