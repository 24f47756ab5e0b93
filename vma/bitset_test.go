package vma

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// check verifies the set's invariants: maximal, disjoint runs, none in a
// paged range; hot apart from the tree, with hotNext right; exact counts
// in dense for the ranges that have one, and only those.
func (s *clusterSet) check() error {
	var all []run
	if s.runs != nil {
		s.runs.Ascend(func(x run) bool { all = append(all, x); return true })
	}
	if s.hasHot {
		want := uint64(noNext)
		for _, x := range all {
			if x.first > s.hot.last {
				want = uint64(x.first)
				break
			}
		}
		if s.hotNext != want {
			return fmt.Errorf("hotNext %d, want %d", s.hotNext, want)
		}
		i := 0
		for i < len(all) && all[i].first < s.hot.first {
			i++
		}
		all = append(all[:i], append([]run{s.hot}, all[i:]...)...)
	}
	var total int64
	starts := map[uint32]int{}
	for i, x := range all {
		if x.last < x.first {
			return fmt.Errorf("run %v is empty", x)
		}
		if i > 0 && uint64(all[i-1].last)+1 >= uint64(x.first) {
			return fmt.Errorf("runs %v and %v overlap or touch", all[i-1], x)
		}
		for r := x.first >> 16; r <= x.last>>16; r++ {
			if s.pages[r] != nil {
				return fmt.Errorf("run %v enters paged range %d", x, r)
			}
		}
		total += int64(x.last-x.first) + 1
		starts[x.first>>16]++
	}
	for r, n := range starts {
		d, ok := s.dense[r]
		switch {
		case n >= pageAt:
			return fmt.Errorf("range %d has %d runs and no page", r, n)
		case n >= denseAt && (!ok || d != n):
			return fmt.Errorf("range %d has %d runs, dense says %d (%v)", r, n, d, ok)
		case n < denseAt && ok:
			return fmt.Errorf("range %d has %d runs, but a dense count of %d", r, n, d)
		}
	}
	for r := range s.dense {
		if starts[r] == 0 {
			return fmt.Errorf("dense counts range %d, which has no runs", r)
		}
	}
	for _, p := range s.pages {
		for _, w := range p {
			total += int64(popcount(w))
		}
	}
	if total != s.count {
		return fmt.Errorf("count %d, runs and pages hold %d", s.count, total)
	}
	return nil
}

func popcount(w uint64) int {
	n := 0
	for ; w != 0; w &= w - 1 {
		n++
	}
	return n
}

// modelMissing is firstMissing by brute force.
func modelMissing(m map[uint32]bool, n int64) int64 {
	for c := int64(0); c < n; c++ {
		if !m[uint32(c)] {
			return c
		}
	}
	return n
}

// TestClusterSetModel adds clusters in many orders and densities, with
// duplicates, and compares every answer with a map.
func TestClusterSetModel(t *testing.T) {
	type pattern struct {
		name     string
		universe uint32 // clusters are drawn below this
		adds     int
		next     func(rng *rand.Rand, i int, u uint32) uint32
	}
	uniform := func(rng *rand.Rand, _ int, u uint32) uint32 { return rng.Uint32N(u) }
	patterns := []pattern{
		{"random in 3 ranges", 3 << 16, 120000, uniform},
		{"random in 1000 clusters", 1000, 3000, uniform},
		{"random across 2^32", 0, 20000, func(rng *rand.Rand, _ int, _ uint32) uint32 { return rng.Uint32() }},
		{"in order with early writes", 5 << 16, 200000, func(rng *rand.Rand, i int, u uint32) uint32 {
			if rng.IntN(10) == 0 {
				return rng.Uint32N(u)
			}
			return uint32(i) % u
		}},
		{"every other, then the rest", 3 << 16, 3 << 16, func(_ *rand.Rand, i int, u uint32) uint32 {
			if c := uint32(2 * i); c < u {
				return c
			}
			return uint32(2*i) - u + 1
		}},
		{"descending", 2 << 16, 2 << 16, func(_ *rand.Rand, i int, u uint32) uint32 { return u - 1 - uint32(i) }},
		{"runs across range ends", 4 << 16, 100000, func(rng *rand.Rand, i int, u uint32) uint32 {
			return uint32(rng.IntN(4))<<16 + uint32(rng.IntN(40)) - 20 + 1<<15*uint32(i%2)
		}},
		{"top of the cluster space", 0, 50000, func(rng *rand.Rand, _ int, _ uint32) uint32 {
			return ^uint32(0) - rng.Uint32N(3<<16)
		}},
	}
	for _, p := range patterns {
		t.Run(p.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, uint64(len(p.name))))
			var s clusterSet
			model := map[uint32]bool{}
			checkEvery := max(p.adds/200, 1)
			for i := range p.adds {
				c := p.next(rng, i, p.universe)
				if got, want := s.add(c), !model[c]; got != want {
					t.Fatalf("add %d (#%d) = %v, want %v", c, i, got, want)
				}
				model[c] = true
				if i%checkEvery == 0 {
					if err := s.check(); err != nil {
						t.Fatalf("after add %d (#%d): %v", c, i, err)
					}
					probe := p.next(rng, i, p.universe)
					if s.has(probe) != model[probe] {
						t.Fatalf("has(%d) = %v, want %v", probe, !model[probe], model[probe])
					}
				}
			}
			if err := s.check(); err != nil {
				t.Fatal(err)
			}
			if s.count != int64(len(model)) {
				t.Fatalf("count %d, want %d", s.count, len(model))
			}
			for c := range model {
				if !s.has(c) {
					t.Fatalf("has(%d) = false after adding it", c)
				}
			}
			if p.universe != 0 {
				for _, n := range []int64{0, 1, int64(p.universe) / 3, int64(p.universe)} {
					if got, want := s.firstMissing(n), modelMissing(model, n); got != want {
						t.Fatalf("firstMissing(%d) = %d, want %d", n, got, want)
					}
				}
			}
		})
	}
}

// TestClusterSetComplete fills a set completely in several orders: it must
// end as one run or full pages, report nothing missing, and refuse every
// cluster again.
func TestClusterSetComplete(t *testing.T) {
	const n = 3<<16 + 1000
	orders := map[string]func(i int) uint32{
		"in order": func(i int) uint32 { return uint32(i) },
		"reverse":  func(i int) uint32 { return n - 1 - uint32(i) },
		"odd, even": func(i int) uint32 {
			if i < n/2 {
				return uint32(2*i + 1)
			}
			return uint32(2 * (i - n/2))
		},
		"interleave": func(i int) uint32 { return uint32(i%4)*(n/4) + uint32(i/4) },
	}
	for name, order := range orders {
		t.Run(name, func(t *testing.T) {
			var s clusterSet
			seen := map[uint32]bool{}
			for i := 0; len(seen) < n; i++ {
				c := order(i)
				if c >= n || seen[c] {
					continue
				}
				seen[c] = true
				if !s.add(c) {
					t.Fatalf("add %d: reported as a duplicate", c)
				}
			}
			if err := s.check(); err != nil {
				t.Fatal(err)
			}
			if s.count != n || s.firstMissing(n) != n {
				t.Fatalf("count %d, firstMissing %d; want %d", s.count, s.firstMissing(n), n)
			}
			if s.firstMissing(n+5) != n {
				t.Fatalf("firstMissing(n+5) = %d, want %d", s.firstMissing(n+5), n)
			}
			for c := uint32(0); c < n; c += 997 {
				if s.add(c) {
					t.Fatalf("add %d again: reported as new", c)
				}
			}
		})
	}
}

// TestClusterSetHugeInOrder: a 16 TiB device written in order is one run,
// and costs no tree at all.
func TestClusterSetHugeInOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("2^28 adds")
	}
	const n = 1 << 28
	var s clusterSet
	for c := range uint32(n) {
		s.add(c)
	}
	if s.count != n || s.firstMissing(n) != n || s.firstMissing(n+1) != n {
		t.Fatalf("count %d, firstMissing %d", s.count, s.firstMissing(n))
	}
	if s.runs != nil && s.runs.Len() > 0 || len(s.pages) != 0 || s.hot != (run{0, n - 1}) {
		t.Fatalf("in-order clusters left tree %v, pages %d, hot %v", s.runs, len(s.pages), s.hot)
	}
}

// TestClusterSetMissing checks firstMissing on holes at the edges: the
// first cluster, a range end, the last cluster, inside a page.
func TestClusterSetMissing(t *testing.T) {
	const n = 4 << 16
	for _, hole := range []uint32{0, 1, 1<<16 - 1, 1 << 16, 2<<16 + 12345, n - 1} {
		for _, paged := range []bool{false, true} {
			var s clusterSet
			if paged {
				// Every other cluster first, so each range becomes a page.
				for c := uint32(0); c < n; c += 2 {
					if c != hole {
						s.add(c)
					}
				}
			}
			for c := uint32(0); c < n; c++ {
				if c != hole {
					s.add(c)
				}
			}
			if paged != (len(s.pages) == 4) {
				t.Fatalf("hole %d, paged %v: %d pages", hole, paged, len(s.pages))
			}
			if got := s.firstMissing(n); got != int64(hole) {
				t.Errorf("hole %d, paged %v: firstMissing = %d", hole, paged, got)
			}
			if got := s.firstMissing(int64(hole)); got != int64(hole) {
				t.Errorf("hole %d, paged %v: firstMissing(%d) = %d", hole, paged, hole, got)
			}
			if s.count != n-1 || s.has(hole) || !s.add(hole) || s.firstMissing(n) != n {
				t.Errorf("hole %d, paged %v: count %d, or the hole did not fill", hole, paged, s.count)
			}
		}
	}
}

// TestClusterSetPageSplitsRuns turns a range into a page while long runs
// cross both of its ends, and the run left over past its end tips the next
// range into a page too.
func TestClusterSetPageSplitsRuns(t *testing.T) {
	const lo, hi = 1 << 16, 2<<16 - 1
	for _, edges := range [][2]uint32{{lo + 5000, hi - 3000}, {lo, hi}} {
		t.Run(fmt.Sprint(edges), func(t *testing.T) { testPageSplitsRuns(t, edges[0], edges[1]) })
	}
}

// testPageSplitsRuns has runs up to throughLo and from fromHi, across the
// ends of range 1.
func testPageSplitsRuns(t *testing.T, throughLo, fromHi uint32) {
	const lo, hi = 1 << 16, 2<<16 - 1
	var s clusterSet
	model := map[uint32]bool{}
	add := func(c uint32) {
		t.Helper()
		if !s.add(c) {
			t.Fatalf("add %d: reported as a duplicate", c)
		}
		model[c] = true
	}
	for c := uint32(lo - 100); c <= throughLo; c++ {
		add(c)
	}
	for c := fromHi; c <= hi+200; c++ {
		add(c)
	}
	for i := range uint32(pageAt - 1) { // range 2 one run short of a page
		add(hi + 1000 + 2*i)
	}
	if len(s.pages) != 0 {
		t.Fatalf("%d pages before any range has %d runs", len(s.pages), pageAt)
	}
	for i := uint32(0); len(s.pages) == 0; i++ { // range 1 fills up with runs
		add(lo + 6000 + 2*i)
		if err := s.check(); err != nil {
			t.Fatal(err)
		}
	}
	if s.pages[1] == nil || s.pages[2] == nil {
		t.Fatalf("pages for ranges %v, want 1 and 2", s.pages)
	}
	if err := s.check(); err != nil {
		t.Fatal(err)
	}
	for c := uint32(lo - 200); c < 3<<16; c++ {
		if s.has(c) != model[c] {
			t.Fatalf("has(%d) = %v", c, !model[c])
		}
	}
	if got, want := s.firstMissing(3<<16), modelMissing(model, 3<<16); got != want {
		t.Fatalf("firstMissing = %d, want %d", got, want)
	}
	if s.count != int64(len(model)) {
		t.Fatalf("count %d, want %d", s.count, len(model))
	}
}

// heapAfter returns the live heap after a collection.
func heapAfter() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestClusterSetMemory holds the set to its bound: for every hostile
// pattern, at most three bytes for each byte of extent header that named
// the clusters (8 bytes a cluster). The old bitmap took 8 KiB for a cluster
// alone in its range.
func TestClusterSetMemory(t *testing.T) {
	const clusters = 100000
	patterns := map[string]func(rng *rand.Rand, i int) (dev int, c uint32){
		"a cluster per range": func(_ *rand.Rand, i int) (int, uint32) { return i % 254, uint32(i/254) << 16 },
		"every other":         func(_ *rand.Rand, i int) (int, uint32) { return 0, uint32(2 * i) },
		"every third":         func(_ *rand.Rand, i int) (int, uint32) { return 0, uint32(3 * i) },
		"random":              func(rng *rand.Rand, _ int) (int, uint32) { return 0, rng.Uint32() },
		"random, 254 devices": func(rng *rand.Rand, i int) (int, uint32) { return i % 254, rng.Uint32() },
		"500 runs per range": func(_ *rand.Rand, i int) (int, uint32) {
			return 0, uint32(i/(pageAt-12))<<16 + 2*uint32(i%(pageAt-12))
		},
	}
	for name, next := range patterns {
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 1))
			before := heapAfter()
			sets := make([]clusterSet, 254)
			for i := range clusters {
				d, c := next(rng, i)
				sets[d].add(c)
			}
			used := heapAfter() - before
			per := float64(used) / clusters
			t.Logf("%.1f bytes a cluster", per)
			if per > 3*8 {
				t.Errorf("%.1f bytes a cluster, more than 3 times the 8 bytes of archive", per)
			}
			runtime.KeepAlive(sets)
		})
	}
}

// BenchmarkClusterSet measures add, per cluster, in the orders an archive
// can come in.
func BenchmarkClusterSet(b *testing.B) {
	const n = 1 << 18 // 16 GiB of device
	orders := []struct {
		name string
		at   func(perm []uint32, i int) uint32
	}{
		{"in order", func(_ []uint32, i int) uint32 { return uint32(i) }},
		{"every other then fill", func(_ []uint32, i int) uint32 {
			if i < n/2 {
				return uint32(2 * i)
			}
			return uint32(2*(i-n/2) + 1)
		}},
		{"random", func(perm []uint32, i int) uint32 { return perm[i] }},
		{"random isolated", func(perm []uint32, i int) uint32 { return perm[i] << 14 }},
	}
	perm := make([]uint32, n)
	for i, p := range rand.New(rand.NewPCG(1, 2)).Perm(n) {
		perm[i] = uint32(p)
	}
	for _, o := range orders {
		b.Run(o.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var s clusterSet
				for i := range n {
					s.add(o.at(perm, i))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/cluster")
		})
	}
}
