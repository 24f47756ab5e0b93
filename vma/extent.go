package vma

import (
	"crypto/md5"
	"math/bits"
)

// extentHeader is the 512-byte header in front of each extent's data.
type extentHeader struct {
	blockCount int
	uuid       [16]byte
	info       [extentSlots]blockInfo
}

// marshal writes h into b[:512], checksum included.
func (h *extentHeader) marshal(b []byte) {
	b = b[:extentHeaderSize]
	clear(b)
	copy(b[extMagic:], extentMagic[:])
	be.PutUint16(b[extBlockCount:], uint16(h.blockCount))
	copy(b[extUUID:], h.uuid[:])
	for i, bi := range h.info {
		be.PutUint64(b[extBlockInfo+8*i:], uint64(bi))
	}
	sum := md5.Sum(b)
	copy(b[extMD5:], sum[:])
}

// parseExtentHeader checks b[:512] in the order restore_extent does
// (checksum, uuid, magic and reserved field) and decodes it. off is the
// extent's archive offset, for errors.
func parseExtentHeader(b []byte, uuid [16]byte, off int64) (extentHeader, error) {
	var h extentHeader
	var tmp [extentHeaderSize]byte
	copy(tmp[:], b[:extentHeaderSize])
	clear(tmp[extMD5 : extMD5+16])
	if sum := md5.Sum(tmp[:]); string(sum[:]) != string(b[extMD5:extMD5+16]) {
		return h, formatErr(off+extMD5, ErrExtentChecksum, "stored %x, computed %x", b[extMD5:extMD5+16], sum)
	}
	copy(h.uuid[:], b[extUUID:extUUID+16])
	if h.uuid != uuid {
		return h, formatErr(off+extUUID, ErrExtentUUID, "extent uuid %x, header uuid %x", h.uuid, uuid)
	}
	if string(b[extMagic:extMagic+4]) != string(extentMagic[:]) {
		return h, formatErr(off, ErrExtentMagic, "got %q", b[extMagic:extMagic+4])
	}
	if r := be.Uint16(b[extReserved:]); r != 0 {
		return h, formatErr(off+extReserved, ErrExtentMagic, "reserved field is 0x%04x, want 0", r)
	}
	h.blockCount = int(be.Uint16(b[extBlockCount:]))
	for i := range h.info {
		h.info[i] = blockInfo(be.Uint64(b[extBlockInfo+8*i:]))
	}
	return h, nil
}

// maskBlocks counts the stored blocks of the used slots.
func (h *extentHeader) maskBlocks() int {
	n := 0
	for _, bi := range h.info {
		if bi.devID() != 0 {
			n += bits.OnesCount16(bi.mask())
		}
	}
	return n
}

func countBlocks(mask uint16) int { return bits.OnesCount16(mask) }
