package qcow2

import (
	"encoding/binary"
	"sync"
)

// The L1 table is read a piece at a time, when a lookup needs it. Holding
// it whole would cost what the header claims: up to 32 MiB for an image of
// a few KiB whose table is a hole of the file, for each image of a chain.
//
// Each image keeps the two pages of the table it read last, in buffers it
// reuses: at most 128 KiB, and no allocation after the first lookup. A
// walk copies the part of a page it is in to its own cursor, so that its
// lookups take no lock. Lookups go through the table in order: the last
// page answers all but one lookup per page, and a read that crosses a
// page boundary keeps both.

const (
	// l1PageEntries is how many L1 entries are read at once: 64 KiB of
	// table, which maps 4 TiB with 64 KiB clusters, so that the table of
	// a real image is read once, and a huge one in few system calls.
	l1PageEntries = 8192
	// l1CursorEntries is how many entries a walk copies at once: 4 KiB,
	// on its stack.
	l1CursorEntries = 512
)

// l1Window is the pages of an image's L1 table read last.
type l1Window struct {
	mu    sync.Mutex
	next  int // the page to refill on a miss
	pages [2]struct {
		first int64  // index of the first entry
		raw   []byte // the entries as stored (big-endian); empty when unused
	}
}

// l1Cursor is a walk's copy of a run of L1 entries.
type l1Cursor struct {
	first, n int64
	entries  [l1CursorEntries]uint64
}

// has reports whether the cursor holds entry i; the zero cursor holds none.
func (c *l1Cursor) has(i int64) bool { return i >= c.first && i-c.first < c.n }

// entry returns entry i, which the cursor holds.
func (c *l1Cursor) entry(i int64) uint64 { return c.entries[i-c.first] }

// loadL1 fills c with the run of L1 entries around entry i, which is below
// img.l1Entries.
func (img *Image) loadL1(c *l1Cursor, i int64) error {
	w := &img.l1
	w.mu.Lock()
	defer w.mu.Unlock()
	first := i &^ (l1PageEntries - 1)
	k := 0
	for ; k < len(w.pages); k++ {
		if p := &w.pages[k]; p.first == first && len(p.raw) > 0 {
			break
		}
	}
	if k == len(w.pages) {
		k, w.next = w.next, (w.next+1)%len(w.pages)
		p := &w.pages[k]
		n := min(l1PageEntries, img.l1Entries-first) * entryBytes
		if int64(cap(p.raw)) < n {
			p.raw = make([]byte, 0, n)
		}
		// Open checked that the table lies within the file.
		if err := readFull(img.r, p.raw[:n], int64(img.h.l1Offset)+first*entryBytes); err != nil {
			p.raw = p.raw[:0]
			return err
		}
		p.first, p.raw = first, p.raw[:n]
	}
	p := &w.pages[k]
	c.first = i &^ (l1CursorEntries - 1)
	raw := p.raw[(c.first-p.first)*entryBytes:]
	c.n = min(l1CursorEntries, int64(len(raw))/entryBytes)
	for j := range c.n {
		c.entries[j] = binary.BigEndian.Uint64(raw[j*entryBytes:])
	}
	return nil
}
