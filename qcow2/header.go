package qcow2

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"strings"
)

// header is the decoded header of one image, with what its extensions and
// cluster 0 add. parseHeader fills it without I/O.
type header struct {
	version          uint32
	backingOffset    uint64
	backingSize      uint32
	clusterBits      uint32
	size             uint64
	cryptMethod      uint32
	l1Size           uint32
	l1Offset         uint64
	refcountOffset   uint64
	refcountClusters uint32
	nbSnapshots      uint32
	snapshotsOffset  uint64
	incompatible     uint64
	compatible       uint64
	autoclear        uint64
	refcountOrder    uint32
	headerLength     uint32
	compressionType  Compression

	backingName   string
	backingFormat string
	dataFileName  string
	// incompatNames maps incompatible feature bits to the names the
	// image's feature table gives them, for error messages.
	incompatNames map[uint8]string
}

// parseHeader decodes cluster 0 of an image. buf holds the start of the file
// up to one cluster (less if the file is shorter; the missing bytes read as
// zeros, as they do in qemu).
func parseHeader(buf []byte) (*header, error) {
	if len(buf) < 4 || binary.BigEndian.Uint32(buf[offMagic:]) != magic {
		return nil, formatErr(offMagic, ErrNotQcow2, "no QFI\\xfb magic")
	}
	if len(buf) < v2HeaderLen {
		return nil, formatErr(int64(len(buf)), ErrTruncated, "header needs %d bytes, file has %d", v2HeaderLen, len(buf))
	}
	be := binary.BigEndian
	h := &header{
		version:          be.Uint32(buf[offVersion:]),
		backingOffset:    be.Uint64(buf[offBackingOffset:]),
		backingSize:      be.Uint32(buf[offBackingSize:]),
		clusterBits:      be.Uint32(buf[offClusterBits:]),
		size:             be.Uint64(buf[offSize:]),
		cryptMethod:      be.Uint32(buf[offCryptMethod:]),
		l1Size:           be.Uint32(buf[offL1Size:]),
		l1Offset:         be.Uint64(buf[offL1Offset:]),
		refcountOffset:   be.Uint64(buf[offRefcountOffset:]),
		refcountClusters: be.Uint32(buf[offRefcountClusters:]),
		nbSnapshots:      be.Uint32(buf[offNbSnapshots:]),
		snapshotsOffset:  be.Uint64(buf[offSnapshotsOffset:]),
		refcountOrder:    4,
		headerLength:     v2HeaderLen,
	}
	if h.version != 2 && h.version != 3 {
		return nil, formatErr(offVersion, ErrUnsupported, "version %d (want 2 or 3)", h.version)
	}
	if h.clusterBits < minClusterBits || h.clusterBits > maxClusterBits {
		return nil, formatErr(offClusterBits, ErrUnsupported, "cluster_bits %d (cluster size must be 512 B to 2 MiB)", h.clusterBits)
	}
	clusterSize := uint64(1) << h.clusterBits
	if h.version == 3 {
		if len(buf) < v3HeaderLen {
			return nil, formatErr(int64(len(buf)), ErrTruncated, "version 3 header needs %d bytes, file has %d", v3HeaderLen, len(buf))
		}
		h.incompatible = be.Uint64(buf[offIncompatible:])
		h.compatible = be.Uint64(buf[offCompatible:])
		h.autoclear = be.Uint64(buf[offAutoclear:])
		h.refcountOrder = be.Uint32(buf[offRefcountOrder:])
		h.headerLength = be.Uint32(buf[offHeaderLength:])
		if h.headerLength < v3HeaderLen || h.headerLength%8 != 0 || uint64(h.headerLength) > clusterSize {
			return nil, formatErr(offHeaderLength, ErrCorrupt, "header_length %d (want a multiple of 8 from %d to the cluster size %d)", h.headerLength, v3HeaderLen, clusterSize)
		}
		if h.headerLength > v3HeaderLen {
			if len(buf) <= offCompressionType {
				return nil, formatErr(offCompressionType, ErrTruncated, "header ends before the compression type")
			}
			h.compressionType = Compression(buf[offCompressionType])
		}
	}
	// Encryption first: an encrypted image is refused as such whatever else
	// it holds.
	if h.cryptMethod != cryptNone {
		return nil, formatErr(offCryptMethod, ErrEncrypted, "crypt_method %d (%s)", h.cryptMethod, cryptName(h.cryptMethod))
	}
	if err := h.parseExtensions(buf); err != nil {
		return nil, err
	}
	if err := h.check(); err != nil {
		return nil, err
	}
	if err := h.parseBackingName(buf); err != nil {
		return nil, err
	}
	return h, nil
}

func cryptName(m uint32) string {
	switch m {
	case cryptAES:
		return "AES-CBC"
	case cryptLUKS:
		return "LUKS"
	}
	return "unknown method"
}

// check validates the fixed header fields against each other, once the
// extensions (and so the feature names) are known.
func (h *header) check() error {
	if unknown := h.incompatible &^ incompatKnown; unknown != 0 {
		return formatErr(offIncompatible, ErrUnsupported, "unknown incompatible feature(s) %s", h.featureList(unknown))
	}
	switch h.compressionType {
	case CompressionZlib:
		if h.incompatible&incompatCompression != 0 {
			return formatErr(offIncompatible, ErrCorrupt, "compression type bit set with compression type zlib")
		}
	case CompressionZstd:
		if h.incompatible&incompatCompression == 0 {
			return formatErr(offCompressionType, ErrCorrupt, "compression type zstd without the compression type bit")
		}
	default:
		return formatErr(offCompressionType, ErrUnsupported, "unknown compression type %d", h.compressionType)
	}
	if h.incompatible&incompatExtendedL2 != 0 && h.clusterBits < minExtL2ClusterBits {
		return formatErr(offClusterBits, ErrCorrupt, "extended L2 entries with %d-byte clusters (need at least %d)", 1<<h.clusterBits, 1<<minExtL2ClusterBits)
	}
	if h.autoclear&autoclearDataFileRaw != 0 && h.incompatible&incompatDataFile == 0 {
		return formatErr(offAutoclear, ErrCorrupt, "data-file-raw bit without an external data file")
	}
	if h.refcountOrder > maxRefcountOrder {
		return formatErr(offRefcountOrder, ErrCorrupt, "refcount_order %d (at most %d)", h.refcountOrder, maxRefcountOrder)
	}
	if h.refcountClusters == 0 {
		return formatErr(offRefcountClusters, ErrCorrupt, "no refcount table")
	}
	if h.size > math.MaxInt64 {
		return formatErr(offSize, ErrCorrupt, "virtual size %d too large", h.size)
	}
	// The L1 table must cover the virtual size (qemu: "L1 table is too
	// small") and stay within qemu's 32 MiB limit.
	if h.l1Size > maxL1Bytes/entryBytes {
		return formatErr(offL1Size, ErrCorrupt, "L1 table of %d entries is larger than 32 MiB", h.l1Size)
	}
	if need := h.l1Needed(); need > uint64(h.l1Size) {
		return formatErr(offL1Size, ErrCorrupt, "L1 table of %d entries too small for virtual size %d (needs %d)", h.l1Size, h.size, need)
	}
	if h.l1Size > 0 && h.l1Offset&(uint64(1)<<h.clusterBits-1) != 0 {
		return formatErr(offL1Offset, ErrCorrupt, "L1 table offset %#x not cluster-aligned", h.l1Offset)
	}
	if h.l1Offset > math.MaxInt64-maxL1Bytes {
		return formatErr(offL1Offset, ErrCorrupt, "L1 table offset %#x out of range", h.l1Offset)
	}
	return nil
}

// l2Bits is log2 of the number of entries in one L2 table.
func (h *header) l2Bits() uint32 {
	if h.incompatible&incompatExtendedL2 != 0 {
		return h.clusterBits - 4
	}
	return h.clusterBits - 3
}

// l1Needed is the number of L1 entries that cover the virtual size.
func (h *header) l1Needed() uint64 {
	shift := h.clusterBits + h.l2Bits()
	n := h.size >> shift
	if h.size&(uint64(1)<<shift-1) != 0 {
		n++
	}
	return n
}

// featureList names the bits of mask from the image's feature table, for
// an error message: "bit 5 (\"foo\"), bit 9".
func (h *header) featureList(mask uint64) string {
	var parts []string
	for mask != 0 {
		b := uint8(bits.TrailingZeros64(mask))
		mask &^= 1 << b
		if name, ok := h.incompatNames[b]; ok {
			parts = append(parts, fmt.Sprintf("bit %d (%q)", b, name))
		} else {
			parts = append(parts, fmt.Sprintf("bit %d", b))
		}
	}
	return strings.Join(parts, ", ")
}

// parseExtensions walks the header extensions from the end of the header to
// the backing file name (or the end of cluster 0).
func (h *header) parseExtensions(buf []byte) error {
	end := uint64(1) << h.clusterBits
	if h.backingOffset != 0 && h.backingOffset < end {
		end = h.backingOffset
	}
	off := uint64(h.headerLength)
	for off < end {
		if end-off < 8 {
			return formatErr(int64(off), ErrCorrupt, "header extension header runs past the extension area (ends at %#x)", end)
		}
		typ := uint32At(buf, off)
		length := uint64(uint32At(buf, off+4))
		if typ == extEnd {
			return nil
		}
		dataOff := off + 8
		if length > end-dataOff {
			return formatErr(int64(off), ErrCorrupt, "header extension %#x of %d bytes runs past the extension area (ends at %#x)", typ, length, end)
		}
		data := bytesAt(buf, dataOff, length)
		switch typ {
		case extBackingFormat:
			if length > maxBackingFormatLen {
				return formatErr(int64(off), ErrCorrupt, "backing format name of %d bytes too long", length)
			}
			h.backingFormat = string(data)
		case extFeatureTable:
			for e := data; len(e) >= featureEntrySize; e = e[featureEntrySize:] {
				if e[0] != 0 { // only incompatible bits matter to a reader
					continue
				}
				if h.incompatNames == nil {
					h.incompatNames = make(map[uint8]string)
				}
				h.incompatNames[e[1]] = cString(e[2:featureEntrySize])
			}
		case extCryptoHeader:
			// Only LUKS images have it, and crypt_method was checked
			// before: an unencrypted image that claims a LUKS header is
			// refused as encrypted all the same.
			return formatErr(int64(off), ErrEncrypted, "full disk encryption header extension")
		case extDataFile:
			if length > maxDataFileNameLen {
				return formatErr(int64(off), ErrCorrupt, "data file name of %d bytes too long", length)
			}
			h.dataFileName = string(data)
		}
		// Extensions are padded to 8 bytes; the padding may run to end.
		off = dataOff + (length+7)&^7
	}
	return nil
}

// parseBackingName reads the backing file name, which sits in cluster 0 at
// backing_file_offset and is not NUL-terminated.
func (h *header) parseBackingName(buf []byte) error {
	if h.backingOffset == 0 {
		return nil
	}
	clusterSize := uint64(1) << h.clusterBits
	if h.backingOffset > clusterSize {
		return formatErr(offBackingOffset, ErrCorrupt, "backing file name offset %#x beyond cluster 0", h.backingOffset)
	}
	n := uint64(h.backingSize)
	if n > maxBackingNameLen || n > clusterSize-h.backingOffset {
		return formatErr(offBackingSize, ErrCorrupt, "backing file name of %d bytes too long", n)
	}
	if h.backingOffset+n > uint64(len(buf)) {
		return formatErr(int64(h.backingOffset), ErrTruncated, "backing file name runs past the end of the file")
	}
	h.backingName = string(buf[h.backingOffset : h.backingOffset+n])
	return nil
}

// uint32At reads a big-endian uint32 at off, with bytes past buf reading as
// zeros (cluster 0 may be longer than the file).
func uint32At(buf []byte, off uint64) uint32 {
	var b [4]byte
	copy(b[:], bytesAt(buf, off, 4))
	return binary.BigEndian.Uint32(b[:])
}

// bytesAt returns buf[off:off+n], cut short where buf ends.
func bytesAt(buf []byte, off, n uint64) []byte {
	if off >= uint64(len(buf)) {
		return nil
	}
	end := off + n
	if end > uint64(len(buf)) || end < off {
		end = uint64(len(buf))
	}
	return buf[off:end]
}

// cString returns b up to its first NUL.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
