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

// fileSpace hands out the bytes of the image file. The file only grows at
// its end, so every host cluster below the end is in use and the refcount
// of a host cluster is final once the end has moved past it. That is what
// keeps refcounts out of memory: they are counted one refcount block (a
// window of cs/2 host clusters) at a time, and the block is written, at
// the end of the file, as soon as the end leaves its window. Only the
// offsets of the blocks written stay in memory, for the refcount table
// (8 bytes per cs²/2 bytes of file; qemu limits the table to 8 MiB).
type fileSpace struct {
	f     WriterFile
	cs    int64
	cbits uint
	end   int64 // the first byte not handed out

	// stage holds the bytes of [stageOff, stageOff+len(stage)), which
	// end at end, until they are written.
	stage    []byte
	stageOff int64

	base    int64    // the first host cluster of the refcount window
	counts  []uint16 // refcounts of the window's clusters
	blocks  []uint64 // file offsets of the refcount blocks written
	scratch []byte   // one cluster, to encode a refcount block or table
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

// reserve hands out n bytes at the end of the file, starting at a cluster
// boundary if aligned. The caller writes them with put and then counts
// them, so that a refcount block the count writes lands after them.
func (s *fileSpace) reserve(n int64, aligned bool) (int64, error) {
	off := s.end
	if aligned {
		off = (off + s.cs - 1) &^ (s.cs - 1)
	}
	if off+n > maxFileOffset {
		return 0, fmt.Errorf("qcow2: image file would grow past %d bytes, the most an L2 entry can address", int64(maxFileOffset))
	}
	s.end = off + n
	return off, nil
}

// add appends b to the file, from a cluster boundary if aligned, and
// counts it.
func (s *fileSpace) add(b []byte, aligned bool) (int64, error) {
	off, err := s.reserve(int64(len(b)), aligned)
	if err != nil {
		return 0, err
	}
	if err := s.put(b, off); err != nil {
		return 0, err
	}
	return off, s.count(off, int64(len(b)))
}

// addPacked appends b, which may cross host clusters, right after the
// previous bytes, as compressed clusters are stored, unless the host
// cluster there is counted maxRefcount times already.
func (s *fileSpace) addPacked(b []byte) (int64, error) {
	c := s.end >> s.cbits
	aligned := s.end&(s.cs-1) != 0 && c-s.base < int64(len(s.counts)) && s.counts[c-s.base] == maxRefcount
	return s.add(b, aligned)
}

// put writes b at off, which is at or past the end of what was put
// before (apart from writeAt's rewrites): bytes that continue the stage
// are gathered in it, others go to the file.
func (s *fileSpace) put(b []byte, off int64) error {
	stageEnd := s.stageOff + int64(len(s.stage))
	if len(s.stage) > 0 && (off < stageEnd || off-stageEnd >= s.cs || len(s.stage)+int(off-stageEnd)+len(b) > cap(s.stage)) {
		if err := s.flush(); err != nil {
			return err
		}
	}
	if len(b) >= cap(s.stage)/2 {
		if err := s.flush(); err != nil {
			return err
		}
		return s.writeFile(b, off)
	}
	if len(s.stage) == 0 {
		s.stageOff = off
	} else {
		// Padding to a cluster boundary: the rest of a host cluster
		// that compressed data began.
		n := len(s.stage)
		s.stage = s.stage[:n+int(off-stageEnd)]
		clear(s.stage[n:])
	}
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
// were handed out last. Windows the count leaves are complete, and their
// refcount blocks are written.
func (s *fileSpace) count(off, n int64) error {
	if n <= 0 {
		return nil
	}
	for c := off >> s.cbits; c <= (off+n-1)>>s.cbits; c++ {
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
// of the file and moves to the next window, which the block itself is
// counted in: it lies past every cluster the window counts.
func (s *fileSpace) closeWindow() error {
	off, err := s.reserve(s.cs, true)
	if err != nil {
		return err
	}
	if err := s.putBlock(off); err != nil {
		return err
	}
	s.base += int64(len(s.counts))
	clear(s.counts)
	return s.count(off, s.cs)
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
	used := (s.end + s.cs - 1) >> s.cbits
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
	if tableOff, err = s.reserve(tableClusters*s.cs, true); err != nil {
		return 0, 0, err
	}
	if err := s.count(tableOff, tableClusters*s.cs); err != nil {
		return 0, 0, err
	}
	// The last blocks: each counts itself. A block that lands just past a
	// full window closes it and starts the next one.
	for {
		off, err := s.reserve(s.cs, true)
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
