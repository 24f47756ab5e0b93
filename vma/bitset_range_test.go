package vma

import (
	"math/rand/v2"
	"testing"
)

// TestClusterSetRanges walks sets of many shapes range by range, as
// Reader.Missing does, and compares every missing and seen run with a map.
func TestClusterSetRanges(t *testing.T) {
	const n = 3<<16 + 777
	shapes := map[string]func(rng *rand.Rand, c uint32) bool{
		"empty":           func(*rand.Rand, uint32) bool { return false },
		"full":            func(*rand.Rand, uint32) bool { return true },
		"sparse":          func(rng *rand.Rand, _ uint32) bool { return rng.IntN(1000) == 0 },
		"dense random":    func(rng *rand.Rand, _ uint32) bool { return rng.IntN(3) != 0 },
		"every other":     func(_ *rand.Rand, c uint32) bool { return c%2 == 0 }, // pages
		"long runs":       func(_ *rand.Rand, c uint32) bool { return (c/5000)%2 == 1 },
		"one hole a page": func(_ *rand.Rand, c uint32) bool { return c&0xffff != 0x1234 },
	}
	for name, shape := range shapes {
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, uint64(len(name))))
			var s clusterSet
			model := make([]bool, n)
			order := rng.Perm(n)
			if name == "every other" {
				// In order, so that the ranges fill with runs and turn to pages.
				for i := range order {
					order[i] = i
				}
			}
			for _, c := range order {
				if shape(rng, uint32(c)) {
					model[c] = true
					s.add(uint32(c))
				}
			}
			for _, from := range []int64{0, 1, 0xffff, 0x10000, n / 2, n - 1, n} {
				if got, want := s.missingFrom(from, n), modelFind(model, from, false); got != want {
					t.Errorf("missingFrom(%d) = %d, want %d", from, got, want)
				}
				if got, want := s.seenFrom(from, n), modelFind(model, from, true); got != want {
					t.Errorf("seenFrom(%d) = %d, want %d", from, got, want)
				}
			}
			// A full walk: alternate missing and seen runs to the end.
			for c := int64(0); c < n; {
				m := s.missingFrom(c, n)
				if want := modelFind(model, c, false); m != want {
					t.Fatalf("walk: missingFrom(%d) = %d, want %d", c, m, want)
				}
				if m >= n {
					break
				}
				e := s.seenFrom(m, n)
				if want := modelFind(model, m, true); e != want {
					t.Fatalf("walk: seenFrom(%d) = %d, want %d", m, e, want)
				}
				c = e
			}
		})
	}
}

// modelFind returns the first index at or after from whose value is v, or
// len(m).
func modelFind(m []bool, from int64, v bool) int64 {
	for c := from; c < int64(len(m)); c++ {
		if m[c] == v {
			return c
		}
	}
	return int64(len(m))
}
