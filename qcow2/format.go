package qcow2

// On-disk layout of a qcow2 image, from QEMU's docs/interop/qcow2.rst and
// block/qcow2.h. All integers are big-endian.

// magic is "QFI\xfb", the first four bytes of every qcow2 image.
const magic = 0x514649fb

// Magic is how every qcow2 image begins, for callers that tell formats
// apart by content.
const Magic = "QFI\xfb"

// Header field offsets. A version 2 header ends at v2HeaderLen; version 3
// adds the feature words, the refcount order and the header length, and
// optionally the compression type byte.
const (
	offMagic            = 0
	offVersion          = 4
	offBackingOffset    = 8
	offBackingSize      = 16
	offClusterBits      = 20
	offSize             = 24
	offCryptMethod      = 32
	offL1Size           = 36
	offL1Offset         = 40
	offRefcountOffset   = 48
	offRefcountClusters = 56
	offNbSnapshots      = 60
	offSnapshotsOffset  = 64
	offIncompatible     = 72
	offCompatible       = 80
	offAutoclear        = 88
	offRefcountOrder    = 96
	offHeaderLength     = 100
	offCompressionType  = 104

	v2HeaderLen = 72
	v3HeaderLen = 104 // without the optional compression type
)

// Cluster sizes qemu accepts: 512 bytes to 2 MiB. Extended L2 entries need
// subclusters (cluster/32) of at least 512 bytes.
const (
	minClusterBits      = 9
	maxClusterBits      = 21
	minExtL2ClusterBits = 14
	subclustersPerL2    = 32
)

// Encryption methods in the header's crypt_method field.
const (
	cryptNone = 0
	cryptAES  = 1
	cryptLUKS = 2
)

// Incompatible feature bits (version 3). A reader must refuse an image with
// a bit it does not know.
const (
	incompatDirty        = 1 << 0 // refcounts may be stale; reading is fine
	incompatCorrupt      = 1 << 1
	incompatDataFile     = 1 << 2
	incompatCompression  = 1 << 3 // compression_type byte is meaningful
	incompatExtendedL2   = 1 << 4
	incompatKnown        = incompatDirty | incompatCorrupt | incompatDataFile | incompatCompression | incompatExtendedL2
	autoclearDataFileRaw = 1 << 1
)

// Header extension types. Extensions follow the header and end at the
// backing file name, or at the end of cluster 0.
const (
	extEnd           = 0x00000000
	extBackingFormat = 0xe2792aca
	extFeatureTable  = 0x6803f857
	extBitmaps       = 0x23852875
	extCryptoHeader  = 0x0537be77
	extDataFile      = 0x44415441

	featureEntrySize = 48 // u8 type, u8 bit, char name[46]
)

// Limits from qemu (block/qcow2.h) that keep a hostile header from making
// the reader allocate or loop without bound.
const (
	maxL1Bytes          = 32 << 20 // QCOW_MAX_L1_SIZE
	maxBackingNameLen   = 1023
	maxBackingFormatLen = 15 // qemu's backing_format buffer is 16 bytes with the NUL
	maxDataFileNameLen  = 1023
	maxRefcountOrder    = 6
)

// Table entry masks. Bits 9-55 of an L1 entry hold the L2 table offset, the
// same bits of a standard L2 entry the host cluster offset. Bit 63 (COPIED)
// only matters to writers, except that it marks offset 0 as allocated in an
// image with an external data file.
const (
	l1OffsetMask  = 0x00fffffffffffe00
	l2OffsetMask  = 0x00fffffffffffe00
	l2Compressed  = 1 << 62
	l2Copied      = 1 << 63
	l2ZeroFlag    = 1 << 0
	entryBytes    = 8 // one L1 entry, or a standard L2 entry
	extEntryBytes = 16
)
