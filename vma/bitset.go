package vma

import "math/bits"

// clusterSet records which clusters of a device were seen. Pages are made
// on first touch, so memory follows what the archive actually holds (each
// cluster costs at least 8 archive bytes) rather than a size field a hostile
// header could set to 256 TiB.
type clusterSet struct {
	pages map[uint32]*[clusterSetPageWords]uint64
	count int64
}

const clusterSetPageWords = 1024 // 65536 clusters (4 GiB of device) per page

// add marks c and reports whether it was new.
func (s *clusterSet) add(c uint32) bool {
	if s.pages == nil {
		s.pages = make(map[uint32]*[clusterSetPageWords]uint64)
	}
	p := s.pages[c>>16]
	if p == nil {
		p = new([clusterSetPageWords]uint64)
		s.pages[c>>16] = p
	}
	w, bit := (c&0xffff)>>6, uint64(1)<<(c&63)
	if p[w]&bit != 0 {
		return false
	}
	p[w] |= bit
	s.count++
	return true
}

func (s *clusterSet) has(c uint32) bool {
	p := s.pages[c>>16]
	return p != nil && p[(c&0xffff)>>6]&(1<<(c&63)) != 0
}

// firstMissing returns the lowest cluster below n that was not seen, or n.
func (s *clusterSet) firstMissing(n int64) int64 {
	for c := int64(0); c < n; {
		p := s.pages[uint32(c>>16)]
		if p == nil {
			return c
		}
		w := p[(c&0xffff)>>6] >> (c & 63)
		if w != ^uint64(0)>>(c&63) {
			return min(c+int64(bits.TrailingZeros64(^w)), n)
		}
		c += 64 - c&63
	}
	return n
}
