package vma

// extentBuilder assembles one extent: 512 bytes of header space, then the
// non-zero blocks of each cluster in slot and bit order. It is the one
// place where blocks are classified: the writer's pending extent (clusters
// from WriteCluster, or merged from WriteDisk's jobs) and each WriteDisk
// job are extentBuilders.
type extentBuilder struct {
	buf  []byte
	pos  int // end of the stored blocks in buf
	n    int // slots used
	info [extentSlots]blockInfo
}

// reset empties the extent, keeping its buffer.
func (e *extentBuilder) reset() {
	if len(e.buf) < extentHeaderSize {
		e.buf = make([]byte, extentHeaderSize)
	}
	e.pos, e.n = extentHeaderSize, 0
	e.info = [extentSlots]blockInfo{}
}

// grow makes buf hold at least n bytes. Buffers grow on demand: an archive
// of holes never needs more than the header, and WriteDisk writes most
// extents from its jobs' buffers.
func (e *extentBuilder) grow(n int) {
	if n <= len(e.buf) {
		return
	}
	b := make([]byte, min(max(n, 2*len(e.buf)), maxExtentSize))
	copy(b, e.buf[:e.pos])
	e.buf = b
}

// addCluster stores cluster c of device dev in the next slot and returns
// its block mask. src holds the cluster's bytes; a shorter src reads as
// zeros after its end. valid is how many bytes of the cluster lie before
// the device's end: blocks past it are never stored and the part of a
// block beyond it is stored as zeros. Blocks whose bit is set in holes are
// zeros known without looking (holes of a sparse disk are never read).
//
// src may lie inside e.buf at or after e.pos: blocks only ever move to
// lower addresses, so a job's buffer is compacted in place.
func (e *extentBuilder) addCluster(dev uint8, c uint32, src []byte, valid int, holes uint16) uint16 {
	var mask uint16
	for i := 0; i < BlocksPerCluster; i++ {
		lo := i * BlockSize
		if lo >= valid || lo >= len(src) {
			break
		}
		if holes&(1<<i) != 0 {
			continue
		}
		blk := src[lo:min(lo+BlockSize, len(src), valid)]
		if isZero(blk) {
			continue
		}
		e.grow(e.pos + BlockSize)
		dst := e.buf[e.pos : e.pos+BlockSize]
		clear(dst[copy(dst, blk):])
		mask |= 1 << i
		e.pos += BlockSize
	}
	e.info[e.n] = makeBlockInfo(mask, dev, c)
	e.n++
	return mask
}

// blocks is the number of blocks stored so far.
func (e *extentBuilder) blocks() int { return (e.pos - extentHeaderSize) / BlockSize }

// seal writes the extent header, checksum included, in front of the
// blocks and returns the whole extent.
func (e *extentBuilder) seal(uuid [16]byte) []byte {
	h := extentHeader{blockCount: e.blocks(), uuid: uuid, info: e.info}
	h.marshal(e.buf)
	return e.buf[:e.pos]
}
