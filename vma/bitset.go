package vma

import (
	"math/bits"

	"github.com/google/btree"
)

// clusterSet records which clusters of a device were seen: a duplicate is
// caught when it arrives, a missing cluster at the end.
//
// Its memory follows what the archive holds, never the device size a
// header claims (up to 2^32 clusters). Seen clusters are kept as maximal
// runs in a B-tree, so an archive written in order, as Proxmox writes each
// device, is a single run however large the disk. A 65536-cluster range
// that gathers many runs becomes an 8 KiB bitmap page instead: memory is
// about the smaller of the two. Each cluster costs the archive 8 bytes (an
// extent header slot) and each run at most about 20 bytes of tree, and a
// range turns into a page once its runs would cost more than the page, so
// no pattern of clusters makes the set much more than twice the size of
// the extent headers that named them.
type clusterSet struct {
	count int64 // clusters seen

	// hot is the run that took the last new cluster. It is kept out of
	// the tree so that the common case, the next cluster in order, costs
	// a few comparisons rather than a tree update.
	hot    run
	hasHot bool
	// hotNext is the first cluster of the tree's next run after hot, or
	// 1<<32 if there is none.
	hotNext uint64

	runs  *btree.BTreeG[run]      // every run but hot, none in a paged range
	pages map[uint32]*clusterPage // ranges kept as bitmaps, by cluster>>16
	// dense counts the runs that start in a range, for the ranges with
	// at least denseAt of them; other ranges are counted when needed.
	dense map[uint32]int
}

// run is the clusters first through last, inclusive (a device can have
// 2^32 clusters, so an exclusive end would not fit in 32 bits).
type run struct{ first, last uint32 }

func runLess(a, b run) bool { return a.first < b.first }

const (
	// pageAt is how many runs starting in one range turn it into a bitmap
	// page: 512 runs take about as much tree as the 8 KiB page.
	pageAt = 512
	// denseAt is the run count from which a range's runs are counted as
	// they come and go. Below it they are counted by walking the tree,
	// which costs at most denseAt steps and no memory for ranges that
	// hold a few runs, however many such ranges there are.
	denseAt = 16
	// btreeDegree gives nodes of up to 63 runs (504 bytes).
	btreeDegree = 32
	noNext      = 1 << 32
)

// add marks c and reports whether it was new.
func (s *clusterSet) add(c uint32) bool {
	// An in-order cluster that needs no merge and stays in hot's range,
	// which therefore has no page.
	if s.hasHot && c == s.hot.last+1 && c>>16 == s.hot.last>>16 && uint64(c)+1 < s.hotNext {
		s.hot.last = c
		s.count++
		return true
	}
	return s.addSlow(c)
}

func (s *clusterSet) addSlow(c uint32) bool {
	if p := s.pages[c>>16]; p != nil {
		if !p.set(c & 0xffff) {
			return false
		}
		s.count++
		return true
	}
	if s.hasHot && c >= s.hot.first && c <= s.hot.last {
		return false
	}
	if s.hasHot && uint64(c) == uint64(s.hot.last)+1 {
		// The next cluster in order, in a new range or next to the
		// tree's next run.
		s.count++
		s.hot.last = c
		if uint64(c)+1 == s.hotNext {
			next := s.take(c + 1)
			s.runRemoved(next.first)
			s.hot.last = next.last
			s.hotNext = s.nextFirst(next.last)
		}
		return true
	}

	s.flushHot()
	prev, hasPrev := s.floor(c)
	if hasPrev && c <= prev.last {
		return false
	}
	s.count++
	next, hasNext := s.after(c)
	joinPrev := hasPrev && uint64(prev.last)+1 == uint64(c)
	joinNext := hasNext && uint64(c)+1 == uint64(next.first)
	cur := run{c, c}
	if joinPrev {
		s.runs.Delete(prev)
		cur.first = prev.first
	}
	s.hotNext = noNext
	if hasNext {
		s.hotNext = uint64(next.first)
	}
	if joinNext {
		s.runs.Delete(next)
		cur.last = next.last
		s.runRemoved(next.first)
		s.hotNext = s.nextFirst(next.last)
	}
	s.hot, s.hasHot = cur, true
	if !joinPrev {
		// A new run, or next's run now starting one cluster earlier. The
		// runs on either side tell whether it is alone in its range, as
		// it is when clusters are sparse, without walking the tree.
		r := c >> 16
		alone := (!hasPrev || prev.first>>16 != r) && (s.hotNext == noNext || uint32(s.hotNext)>>16 != r)
		s.runAdded(c, alone)
	}
	return true
}

// has reports whether c was seen.
func (s *clusterSet) has(c uint32) bool {
	if p := s.pages[c>>16]; p != nil {
		return p.has(c & 0xffff)
	}
	_, ok := s.runAt(c)
	return ok
}

// firstMissing returns the lowest cluster below n that was not seen, or n.
func (s *clusterSet) firstMissing(n int64) int64 { return s.missingFrom(0, n) }

// missingFrom returns the lowest cluster in [from, n) that was not seen,
// or n.
func (s *clusterSet) missingFrom(from, n int64) int64 {
	for c := from; c < n; {
		r := uint32(c >> 16)
		if p := s.pages[r]; p != nil {
			if i, ok := p.firstClear(int(c & 0xffff)); ok {
				return min(int64(r)<<16+int64(i), n)
			}
			c = int64(r+1) << 16
			continue
		}
		x, ok := s.runAt(uint32(c))
		if !ok {
			return c
		}
		c = int64(x.last) + 1
	}
	return n
}

// seenFrom returns the lowest cluster in [from, n) that was seen, or n.
func (s *clusterSet) seenFrom(from, n int64) int64 {
	if from >= n {
		return n
	}
	c := uint32(from)
	if _, ok := s.runAt(c); ok {
		return from
	}
	best := n
	if s.hasHot && int64(s.hot.first) > from {
		best = min(best, int64(s.hot.first))
	}
	if x, ok := s.after(c); ok {
		best = min(best, int64(x.first))
	}
	for r, p := range s.pages {
		lo := int64(r) << 16
		if lo+1<<16 <= from || lo >= best {
			continue
		}
		if i, ok := p.firstSet(int(max(from-lo, 0))); ok {
			best = min(best, lo+int64(i))
		}
	}
	return best
}

// runAt returns the run that holds c.
func (s *clusterSet) runAt(c uint32) (run, bool) {
	if s.hasHot && c >= s.hot.first && c <= s.hot.last {
		return s.hot, true
	}
	if x, ok := s.floor(c); ok && c <= x.last {
		return x, true
	}
	return run{}, false
}

// flushHot puts hot into the tree.
func (s *clusterSet) flushHot() {
	if !s.hasHot {
		return
	}
	if s.runs == nil {
		s.runs = btree.NewG(btreeDegree, runLess)
	}
	s.runs.ReplaceOrInsert(s.hot)
	s.hasHot = false
}

// floor returns the tree's run with the highest first at or below c.
func (s *clusterSet) floor(c uint32) (x run, ok bool) {
	if s.runs != nil {
		s.runs.DescendLessOrEqual(run{first: c}, func(r run) bool { x, ok = r, true; return false })
	}
	return x, ok
}

// after returns the tree's run with the lowest first above c.
func (s *clusterSet) after(c uint32) (x run, ok bool) {
	if s.runs != nil && c != ^uint32(0) {
		s.runs.AscendGreaterOrEqual(run{first: c + 1}, func(r run) bool { x, ok = r, true; return false })
	}
	return x, ok
}

// nextFirst returns the first cluster of the tree's run after c, or noNext.
func (s *clusterSet) nextFirst(c uint32) uint64 {
	if x, ok := s.after(c); ok {
		return uint64(x.first)
	}
	return noNext
}

// take removes the tree's run that starts at first.
func (s *clusterSet) take(first uint32) run {
	x, _ := s.runs.Delete(run{first: first})
	return x
}

// runAdded notes a run that now starts at first, in the tree or as hot,
// and turns its range into a page when that makes too many. alone says
// that no other run starts in the range.
func (s *clusterSet) runAdded(first uint32, alone bool) {
	r := first >> 16
	n, ok := s.dense[r]
	switch {
	case ok:
		n++
	case alone:
		return
	default:
		if n = s.countRuns(r); n < denseAt {
			return
		}
	}
	if s.dense == nil {
		s.dense = make(map[uint32]int)
	}
	s.dense[r] = n
	if n >= pageAt {
		s.toPage(r)
	}
}

// runRemoved notes that a run starting at first is gone.
func (s *clusterSet) runRemoved(first uint32) {
	r := first >> 16
	if n, ok := s.dense[r]; ok {
		if n-1 < denseAt {
			delete(s.dense, r)
		} else {
			s.dense[r] = n - 1
		}
	}
}

// countRuns counts the runs that start in range r, up to denseAt.
func (s *clusterSet) countRuns(r uint32) int {
	n := 0
	if s.hasHot && s.hot.first>>16 == r {
		n++
	}
	if s.runs != nil {
		s.runs.AscendGreaterOrEqual(run{first: r << 16}, func(x run) bool {
			if x.first>>16 != r || n >= denseAt {
				return false
			}
			n++
			return true
		})
	}
	return n
}

// toPage moves range r's clusters from runs into a new bitmap page. Parts
// of runs outside the range stay runs.
func (s *clusterSet) toPage(r uint32) {
	s.flushHot()
	lo, hi := r<<16, r<<16|0xffff
	var inside []run
	if x, ok := s.floor(lo); ok && x.first < lo && x.last >= lo {
		inside = append(inside, x)
	}
	s.runs.AscendGreaterOrEqual(run{first: lo}, func(x run) bool {
		if x.first > hi {
			return false
		}
		inside = append(inside, x)
		return true
	})
	p := new(clusterPage)
	tail := false
	var tailFirst uint32
	for _, x := range inside {
		s.runs.Delete(x)
		p.setRange(max(x.first, lo)-lo, min(x.last, hi)-lo)
		if x.first < lo {
			s.runs.ReplaceOrInsert(run{x.first, lo - 1})
		}
		if x.last > hi {
			s.runs.ReplaceOrInsert(run{hi + 1, x.last})
			tail, tailFirst = true, hi+1
		}
	}
	if s.pages == nil {
		s.pages = make(map[uint32]*clusterPage)
	}
	s.pages[r] = p
	delete(s.dense, r)
	if tail {
		// The run that went on past the range now starts in the next.
		s.runAdded(tailFirst, false)
	}
}

// clusterPage is a bitmap of the 65536 clusters of one range.
type clusterPage [1024]uint64

// set marks cluster i of the range and reports whether it was new.
func (p *clusterPage) set(i uint32) bool {
	w, bit := i>>6, uint64(1)<<(i&63)
	if p[w]&bit != 0 {
		return false
	}
	p[w] |= bit
	return true
}

func (p *clusterPage) has(i uint32) bool { return p[i>>6]&(1<<(i&63)) != 0 }

// setRange marks clusters a through b of the range.
func (p *clusterPage) setRange(a, b uint32) {
	for i := a; i <= b; {
		if i&63 == 0 && b-i >= 63 {
			p[i>>6] = ^uint64(0)
			i += 64
			continue
		}
		p[i>>6] |= 1 << (i & 63)
		i++
	}
}

// firstClear returns the lowest unmarked cluster of the range at or above
// from.
func (p *clusterPage) firstClear(from int) (int, bool) {
	for i := from; i < 65536; i += 64 - i&63 {
		if w := ^p[i>>6] >> (i & 63); w != 0 {
			return i + bits.TrailingZeros64(w), true
		}
	}
	return 0, false
}

// firstSet returns the lowest marked cluster of the range at or above
// from.
func (p *clusterPage) firstSet(from int) (int, bool) {
	for i := from; i < 65536; i += 64 - i&63 {
		if w := p[i>>6] >> (i & 63); w != 0 {
			return i + bits.TrailingZeros64(w), true
		}
	}
	return 0, false
}
