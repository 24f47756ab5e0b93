package vma

import "encoding/binary"

// On-disk layout constants, as in Proxmox's vma.h.
const (
	// BlockSize is the granularity of zero elision: a 4 KiB block is
	// stored only if it holds a non-zero byte.
	BlockSize = 4096
	// ClusterSize is the unit the archive records: every cluster of every
	// device appears exactly once, with a mask of its stored blocks.
	ClusterSize = 65536
	// BlocksPerCluster is the number of mask bits of a cluster.
	BlocksPerCluster = ClusterSize / BlockSize

	// maxDevices is the highest dev_id a writer hands out. Slot 255 exists
	// in the header but Proxmox's tools never list or extract it.
	maxDevices = 254
	// maxConfigs is the number of config slots in the header.
	maxConfigs = 256
	// maxBlobSize is the largest config or name: blob lengths are 16 bits.
	maxBlobSize = 65535

	headerFixedSize   = 12288 // VmaHeader: 4096 + 8192 bytes of dev_info
	maxHeaderSize     = 524288
	extentHeaderSize  = 512
	extentSlots       = 59 // blockinfo slots in an extent header
	writerSlots       = 58 // Proxmox's writer flushes at 58, never filling slot 58
	maxExtentSize     = extentHeaderSize + extentSlots*ClusterSize
	deviceInfoOffset  = 4096
	deviceInfoSize    = 32
	configNamesOffset = 2044
	configDataOffset  = 3068
)

var (
	headerMagic = [4]byte([]byte(Magic))
	extentMagic = [4]byte{'V', 'M', 'A', 'E'}
)

// Field offsets inside the fixed header.
const (
	hdrMagic      = 0
	hdrVersion    = 4
	hdrUUID       = 8
	hdrCtime      = 24
	hdrMD5        = 32
	hdrBlobOffset = 48
	hdrBlobSize   = 52
	hdrSize       = 56
)

// Field offsets inside an extent header.
const (
	extMagic      = 0
	extReserved   = 4
	extBlockCount = 6
	extUUID       = 8
	extMD5        = 24
	extBlockInfo  = 40
)

// blockInfo is one extent slot: mask<<48 | dev_id<<32 | cluster number.
// The bullet list in Proxmox's vma_spec.txt orders these fields wrongly;
// this is what the C code builds and parses.
type blockInfo uint64

func makeBlockInfo(mask uint16, devID uint8, cluster uint32) blockInfo {
	return blockInfo(uint64(mask)<<48 | uint64(devID)<<32 | uint64(cluster))
}

func (b blockInfo) mask() uint16    { return uint16(b >> 48) }
func (b blockInfo) devID() uint8    { return uint8(b >> 32) }
func (b blockInfo) cluster() uint32 { return uint32(b) }

var be = binary.BigEndian

// Magic is how every uncompressed archive begins. A compressed archive
// begins with its compressor's magic; Decompress takes that off.
const Magic = "VMA\x00"
