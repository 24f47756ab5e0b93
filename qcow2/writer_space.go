package qcow2

import (
	"encoding/binary"
	"fmt"
)

// stageSize is the write buffer of the file's end: compressed clusters are
// a few KiB each, and gathering them saves a system call per cluster.
// Pieces of half of it or more are written directly.
const stageSize = 1 << 20

// maxRefcount is the largest 16-bit refcount. A host cluster full of tiny
// compressed clusters could count more; the next one then starts a new
// host cluster.
const maxRefcount = 1<<16 - 1

// fileSpace hands out the clusters of the image file. The file only grows
// at its end, a whole cluster at a time, so every host cluster below the
// end is in use, and its refcount is final once it can get no more
// compressed clusters. That is what keeps refcounts out of memory: they
// are counted one refcount block (a window of cs/2 host clusters) at a
// time, and the block is written, at the end of the file, as soon as the
// end leaves its window. Only the offsets of the blocks written stay in
// memory, for the refcount table (8 bytes per cs²/2 bytes of file; qemu
// limits the table to 8 MiB).
//
// Compressed clusters are packed, byte after byte, into the rest of the
// host cluster the previous one ended in, even when other clusters were
// handed out since (as qemu keeps its free_byte_offset), so that L2 tables
// and uncompressed clusters between compressed ones waste no space. The
// rest of that cluster is given up when its refcount window is written.
type fileSpace struct {
	f     WriterFile
	cs    int64
	cbits uint
	end   int64 // the first cluster not handed out, in bytes

	// packOff is where the next compressed cluster can go, and packEnd
	// the end of the host clusters it may use; packOff == packEnd when
	// there is no room.
	packOff, packEnd int64

	// stage holds the bytes of [stageOff, stageOff+len(stage)), which
	// end at end, until they are written.
	stage    []byte
	stageOff int64

	base   int64    // the first host cluster of the refcount window
	counts []uint16 // refcounts of the window's clusters
	blocks []uint64 // file offsets of the refcount blocks written
	// uncounted are blocks written but not yet counted themselves.
	uncounted []int64
	scratch   []byte // one cluster, to encode a refcount block or table
}

func (s *fileSpace) init(f WriterFile, cbits uint) {
	s.f, s.cbits, s.cs = f, cbits, int64(1)<<cbits
	s.counts = make([]uint16, s.cs/2)
	s.scratch = make([]byte, s.cs)
	s.stage = make([]byte, 0, max(stageSize, s.cs))
}

func (s *fileSpace) release() {
	s.stage, s.counts, s.scratch, s.blocks = nil, nil, nil, nil
}

// maxFileOffset is the end of the bytes an L2 entry can address: bits 9-55
// hold the host offset of a cluster.
const maxFileOffset = 1 << 56

// reserve hands out the clusters of n bytes at the end of the file. The
// caller writes them with put and then counts them, so that a refcount
// block the count writes lands after them.
func (s *fileSpace) reserve(n int64) (int64, error) {
	off := s.end
	if off+n > maxFileOffset {
		return 0, fmt.Errorf("qcow2: image file would grow past %d bytes, the most an L2 entry can address", int64(maxFileOffset))
	}
	s.end = off + (n+s.cs-1)&^(s.cs-1)
	return off, nil
}

// add appends b to the file, from a cluster boundary, and counts it.
func (s *fileSpace) add(b []byte) (int64, error) {
	off, err := s.reserve(int64(len(b)))
	if err != nil {
		return 0, err
	}
	if err := s.put(b, off); err != nil {
		return 0, err
	}
	return off, s.count(off, int64(len(b)))
}

// addPacked stores a compressed cluster, which may cross host clusters,
// right after the previous one if it fits in the clusters that one used,
// or if those are the last of the file and can grow; otherwise from a new
// cluster.
func (s *fileSpace) addPacked(b []byte) (int64, error) {
	n := int64(len(b))
	room := s.packOff < s.packEnd && s.counts[s.packOff>>s.cbits-s.base] < maxRefcount
	off := s.packOff
	switch {
	case room && off+n <= s.packEnd:
	case room && s.packEnd == s.end:
		if _, err := s.reserve(off + n - s.end); err != nil {
			return 0, err
		}
		s.packEnd = s.end
	default:
		var err error
		if off, err = s.reserve(n); err != nil {
			return 0, err
		}
		s.packEnd = s.end
	}
	s.packOff = off + n
	if err := s.put(b, off); err != nil {
		return 0, err
	}
	return off, s.count(off, n)
}

// put writes b at off: into the stage if it lies in it or continues it
// (after zeros for the unused rest of a packed cluster), directly
// otherwise.
func (s *fileSpace) put(b []byte, off int64) error {
	end := off + int64(len(b))
	if len(s.stage) > 0 {
		stageEnd := s.stageOff + int64(len(s.stage))
		switch {
		case off >= s.stageOff && end <= stageEnd:
			copy(s.stage[off-s.stageOff:], b)
			return nil
		case end <= s.stageOff:
			return s.writeFile(b, off)
		case off >= stageEnd && off-stageEnd < s.cs && end-s.stageOff <= int64(cap(s.stage)) && len(b) < cap(s.stage)/2:
		default:
			if err := s.flush(); err != nil {
				return err
			}
		}
	}
	if len(b) >= cap(s.stage)/2 {
		return s.writeFile(b, off)
	}
	if len(s.stage) == 0 {
		s.stageOff = off
	}
	n := len(s.stage)
	s.stage = s.stage[:int(off-s.stageOff)]
	clear(s.stage[n:])
	s.stage = append(s.stage, b...)
	return nil
}

// flush writes the stage.
func (s *fileSpace) flush() error {
	if len(s.stage) == 0 {
		return nil
	}
	err := s.writeFile(s.stage, s.stageOff)
	s.stage = s.stage[:0]
	return err
}

func (s *fileSpace) writeFile(b []byte, off int64) error {
	if _, err := s.f.WriteAt(b, off); err != nil {
		return fmt.Errorf("qcow2: writing %d bytes at offset %d: %w", len(b), off, err)
	}
	return nil
}

// writeAt rewrites bytes handed out before (an L2 table updated in place).
func (s *fileSpace) writeAt(b []byte, off int64) error {
	if err := s.flush(); err != nil {
		return err
	}
	return s.writeFile(b, off)
}

// readAt reads back bytes written before (an L2 table written early).
func (s *fileSpace) readAt(b []byte, off int64) error {
	if err := s.flush(); err != nil {
		return err
	}
	n, err := s.f.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil {
		err = fmt.Errorf("short read (%d bytes)", n)
	}
	return fmt.Errorf("qcow2: reading back %d bytes at offset %d of the output: %w", len(b), off, err)
}

// count adds one reference to every host cluster of [off, off+n), which
// are in the current refcount window or past it. Windows the count leaves
// are complete, and their refcount blocks are written.
//
// A block lands at the end of the file, past the range being counted; it
// is counted once the whole range is, since counting it first would close
// the windows of the range's later clusters before they were counted (a
// range can span several windows: with 512-byte clusters a window maps
// only 128 KiB).
func (s *fileSpace) count(off, n int64) error {
	if err := s.countRange(off, n); err != nil {
		return err
	}
	for len(s.uncounted) > 0 {
		b := s.uncounted[0]
		s.uncounted = s.uncounted[1:]
		if err := s.countRange(b, s.cs); err != nil {
			return err
		}
	}
	return nil
}

func (s *fileSpace) countRange(off, n int64) error {
	if n <= 0 {
		return nil
	}
	for c := off >> s.cbits; c <= (off+n-1)>>s.cbits; c++ {
		if c < s.base {
			return fmt.Errorf("qcow2: internal error: counting host cluster %d after its refcount block was written", c)
		}
		for c >= s.base+int64(len(s.counts)) {
			if err := s.closeWindow(); err != nil {
				return err
			}
		}
		s.counts[c-s.base]++
	}
	return nil
}

// closeWindow writes the refcount block of the current window at the end
// of the file and moves to the next window, where the block itself is
// counted (see count): it lies past every cluster the window counts.
// Compressed clusters can no longer go into the window's clusters.
func (s *fileSpace) closeWindow() error {
	off, err := s.reserve(s.cs)
	if err != nil {
		return err
	}
	if err := s.putBlock(off); err != nil {
		return err
	}
	s.base += int64(len(s.counts))
	clear(s.counts)
	if s.packOff>>s.cbits < s.base {
		s.packOff, s.packEnd = 0, 0
	}
	s.uncounted = append(s.uncounted, off)
	return nil
}

// putBlock encodes the window's refcounts as the refcount block at off.
func (s *fileSpace) putBlock(off int64) error {
	for i, c := range s.counts {
		binary.BigEndian.PutUint16(s.scratch[2*i:], c)
	}
	s.blocks = append(s.blocks, uint64(off))
	return s.put(s.scratch, off)
}

// finish writes the refcount table and the last refcount blocks, after
// everything else, and flushes the stage. It returns the table's offset
// and its length in clusters.
func (s *fileSpace) finish() (tableOff int64, tableClusters int64, err error) {
	// The table must have an entry for every block, including the blocks
	// that count the table and themselves. Find the smallest table that
	// fits: done blocks are written, the rest cover the end of the file.
	perBlock := int64(len(s.counts))
	done := int64(len(s.blocks))
	used := s.end >> s.cbits
	for tableClusters = 1; ; tableClusters++ {
		more := int64(1)
		for {
			total := used + tableClusters + more
			need := (total+perBlock-1)/perBlock - done
			if need <= more {
				break
			}
			more = need
		}
		if (done+more)*entryBytes <= tableClusters*s.cs {
			break
		}
	}
	if tableOff, err = s.reserve(tableClusters * s.cs); err != nil {
		return 0, 0, err
	}
	if err := s.count(tableOff, tableClusters*s.cs); err != nil {
		return 0, 0, err
	}
	// The last blocks: each counts itself. A block that lands just past a
	// full window closes it and starts the next one.
	for {
		off, err := s.reserve(s.cs)
		if err != nil {
			return 0, 0, err
		}
		c := off >> s.cbits
		if c < s.base+perBlock {
			s.counts[c-s.base]++
			if err := s.putBlock(off); err != nil {
				return 0, 0, err
			}
			break
		}
		if err := s.putBlock(off); err != nil {
			return 0, 0, err
		}
		s.base += perBlock
		clear(s.counts)
		s.counts[c-s.base]++
	}
	if int64(len(s.blocks))*entryBytes > tableClusters*s.cs {
		return 0, 0, fmt.Errorf("qcow2: internal error: %d refcount blocks for a %d-cluster refcount table", len(s.blocks), tableClusters)
	}
	// The table, a cluster at a time, into the clusters reserved for it.
	for i := int64(0); i < tableClusters; i++ {
		clear(s.scratch)
		for j := range s.cs / entryBytes {
			if k := i*s.cs/entryBytes + j; k < int64(len(s.blocks)) {
				binary.BigEndian.PutUint64(s.scratch[j*entryBytes:], s.blocks[k])
			}
		}
		if err := s.writeAt(s.scratch, tableOff+i*s.cs); err != nil {
			return 0, 0, err
		}
	}
	return tableOff, tableClusters, s.flush()
}
