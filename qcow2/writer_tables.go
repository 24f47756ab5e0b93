package qcow2

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// l2Table is an L2 table held in memory while the image is written.
type l2Table struct {
	idx        int64 // its L1 index
	buf        []byte
	dirty      bool // changed since it was last written to the file
	prev, next *l2Table
}

// l2Set holds the L1 table and the L2 tables in memory: at most max of
// them, in a list from most to least recently used. A table dropped from
// the set is written to the file first (appended the first time, in place
// after that), and read back when a cluster it maps is written again.
type l2Set struct {
	l1       []uint64 // entries as written: file offset | l2Copied, or 0
	resident map[int64]*l2Table
	lru      l2Table // sentinel: lru.next is the most recent
	last     *l2Table
	max      int
}

func (s *l2Set) init(l1Entries int64, max int) {
	s.l1 = make([]uint64, l1Entries)
	s.resident = make(map[int64]*l2Table)
	s.lru.next, s.lru.prev = &s.lru, &s.lru
	s.max = max
}

func (s *l2Set) release() {
	s.l1, s.resident, s.last = nil, nil, nil
	s.lru.next, s.lru.prev = &s.lru, &s.lru
}

func (s *l2Set) unlink(t *l2Table) {
	t.prev.next, t.next.prev = t.next, t.prev
}

func (s *l2Set) pushFront(t *l2Table) {
	t.prev, t.next = &s.lru, s.lru.next
	s.lru.next.prev = t
	s.lru.next = t
}

// table returns the L2 table of L1 index idx, loading it from the file or
// making an empty one. Without create it returns nil for a table that
// does not exist yet.
func (w *Writer) table(idx int64, create bool) (*l2Table, error) {
	s := &w.tables
	if s.last != nil && s.last.idx == idx {
		return s.last, nil
	}
	if t := s.resident[idx]; t != nil {
		s.unlink(t)
		s.pushFront(t)
		s.last = t
		return t, nil
	}
	if !create && s.l1[idx] == 0 {
		return nil, nil
	}
	var t *l2Table
	if len(s.resident) >= s.max {
		t = s.lru.prev
		if err := w.writeTable(t); err != nil {
			return nil, err
		}
		s.unlink(t)
		delete(s.resident, t.idx)
	} else {
		t = &l2Table{buf: make([]byte, w.cs)}
	}
	t.idx, t.dirty = idx, false
	if off := int64(s.l1[idx] & l1OffsetMask); off != 0 {
		if err := w.space.readAt(t.buf, off); err != nil {
			return nil, err
		}
	} else {
		clear(t.buf)
	}
	s.resident[idx] = t
	s.pushFront(t)
	s.last = t
	return t, nil
}

// writeTable writes t to the file if it changed: at the end of the file
// the first time, where it is after that.
func (w *Writer) writeTable(t *l2Table) error {
	if !t.dirty {
		return nil
	}
	s := &w.tables
	if off := int64(s.l1[t.idx] & l1OffsetMask); off != 0 {
		if err := w.space.writeAt(t.buf, off); err != nil {
			return err
		}
	} else {
		off, err := w.space.add(t.buf)
		if err != nil {
			return err
		}
		s.l1[t.idx] = uint64(off) | l2Copied
	}
	t.dirty = false
	return nil
}

// setEntry maps virtual cluster vc with L2 entry e. A cluster that holds
// data cannot be mapped again; a zero cluster can.
func (w *Writer) setEntry(vc int64, e uint64) error {
	t, err := w.table(vc>>w.l2bits, true)
	if err != nil {
		return err
	}
	p := t.buf[(vc&(1<<w.l2bits-1))*entryBytes:]
	if old := binary.BigEndian.Uint64(p); old != 0 && old != l2ZeroFlag {
		return w.rewriteErr(vc)
	}
	binary.BigEndian.PutUint64(p, e)
	t.dirty = true
	return nil
}

// setZero records that clusters [vc, vc+n) read as zeros: with
// ZeroClusters as zero clusters, otherwise by leaving them unallocated,
// which only needs a check that none of them holds data.
func (w *Writer) setZero(vc, n int64) error {
	for end := vc + n; vc < end; {
		idx := vc >> w.l2bits
		tableEnd := min(end, (idx+1)<<w.l2bits)
		t, err := w.table(idx, w.zeroes)
		if err != nil {
			return err
		}
		if t != nil {
			base := idx << w.l2bits
			for c := vc; c < tableEnd; c++ {
				p := t.buf[(c-base)*entryBytes:]
				switch binary.BigEndian.Uint64(p) {
				case l2ZeroFlag:
				case 0:
					if w.zeroes {
						binary.BigEndian.PutUint64(p, l2ZeroFlag)
						t.dirty = true
					}
				default:
					return w.rewriteErr(c)
				}
			}
		}
		vc = tableEnd
	}
	return nil
}

func (w *Writer) rewriteErr(vc int64) error {
	return fmt.Errorf("qcow2: cluster %d (offset %d) written twice: %w", vc, vc<<w.cbits, ErrClusterWritten)
}

// finishTables writes the L2 tables still in memory, in L1 order, and then
// the L1 table. It returns the L1 table's offset (0 for an empty disk).
func (w *Writer) finishTables() (int64, error) {
	s := &w.tables
	idx := make([]int64, 0, len(s.resident))
	for i := range s.resident {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	for _, i := range idx {
		if err := w.writeTable(s.resident[i]); err != nil {
			return 0, err
		}
	}
	if len(s.l1) == 0 {
		return 0, nil
	}
	// Reserve the whole table before counting it, so that a refcount block
	// the count writes lands after it rather than inside it.
	n := int64(len(s.l1)) * entryBytes
	l1Off, err := w.space.reserve(n)
	if err != nil {
		return 0, err
	}
	buf := w.space.scratch
	for i := int64(0); i*w.cs < n; i++ {
		clear(buf)
		for j, e := range s.l1[i*w.cs/entryBytes : min(int64(len(s.l1)), (i+1)*w.cs/entryBytes)] {
			binary.BigEndian.PutUint64(buf[j*entryBytes:], e)
		}
		if err := w.space.put(buf, l1Off+i*w.cs); err != nil {
			return 0, err
		}
	}
	return l1Off, w.space.count(l1Off, n)
}
