package codec

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/adler32"
	"hash/crc32"
	"io"

	"github.com/anchore/go-lzo"
	"github.com/vmatool/vmatool/internal/budget"
	"github.com/vmatool/vmatool/internal/pipeline"
)

// The lzop container, as lzop 1.04 writes and reads it (lzop.c write_header
// and read_header, p_lzo.c lzo_compress and lzo_decompress). vzdump runs
// the archive through "lzop" for .vma.lzo backups. All integers are big
// endian.
//
//	magic        9 bytes, lzopMagic
//	header       version u16, lib version u16, [version needed u16],
//	             method u8, [level u8], flags u32, [filter u32], mode u32,
//	             mtime low u32, [mtime high u32], name length u8, name,
//	             checksum u32 of the header fields (not the magic)
//	[extra]      length u32, data, checksum u32 of length and data
//	blocks       uncompressed size u32 (0 ends the stream), compressed
//	             size u32, [checksums of the uncompressed data],
//	             [checksums of the compressed data], data
//
// Fields in brackets depend on the version (>= 0x0940) or on flags.

var lzopMagic = [9]byte{0x89, 'L', 'Z', 'O', 0x00, '\r', '\n', 0x1a, '\n'}

// Header flags (lzop's F_*).
const (
	lzopAdler32D     = 0x00000001 // adler32 of each block's uncompressed data
	lzopAdler32C     = 0x00000002 // adler32 of each block's compressed data
	lzopExtraField   = 0x00000040
	lzopCRC32D       = 0x00000100
	lzopCRC32C       = 0x00000200
	lzopFilter       = 0x00000800 // header carries a filter number
	lzopHeaderCRC32  = 0x00001000 // header checksums are crc32, not adler32
	lzopFlagsUnknown = 0x000fc000 // must be zero (lzop's F_RESERVED)
)

const (
	// lzopVersionNewHeader is the first format version whose header has
	// the version-needed, level and mtime-high fields.
	lzopVersionNewHeader = 0x0940
	// lzopVersionMin is the oldest format lzop itself reads.
	lzopVersionMin = 0x0900
	// lzopVersionMax is lzop 1.04, the newest release: a stream that
	// needs more is a format this reader has never seen.
	lzopVersionMax = 0x1040

	// lzopMaxBlockSize is the largest block lzop writes, and the largest
	// it reads. lzop 1.04 compresses its input in pieces of BLOCK_SIZE,
	// 256 KiB (128 KiB in 16-bit DOS builds), a constant with no option
	// to change it (p_lzo.c: "static const lzo_uint32 block_size =
	// BLOCK_SIZE; maybe make this an option ?"). Its reader refuses a
	// larger block, "block size too small -- recompile lzop", after
	// checking the sanity bound MAX_BLOCK_SIZE (64 MiB) that this limit
	// once copied; the kernel's unlzo refuses one too. So every stream
	// lzop can read reads here, and a hostile one claiming 64 MiB blocks
	// costs two 256 KiB buffers instead of 128 MiB.
	lzopMaxBlockSize = 256 << 10

	// lzopMaxExpansion bounds how far LZO1X can expand. The densest
	// instruction is a long match: 4+z input bytes (opcode, z zero bytes
	// of 255 length each, a final length byte, a distance) make at most
	// 288+255z output bytes, and literals and short matches make far less
	// per byte. A block claiming more than 256 times its compressed size
	// is therefore corrupt, and refusing it means the output buffer never
	// exceeds 256 times the input actually read. (lzop's own worst, 256
	// KiB of zeros at -1, is 222 times.)
	lzopMaxExpansion = 256
)

// Errors of the lzop reader, for errors.Is. They arrive wrapped with the
// offset in the compressed stream of the header or block at fault.
var (
	// ErrLzopChecksum reports a header or block whose checksum does not
	// match its contents.
	ErrLzopChecksum = errors.New("checksum mismatch")
	// ErrLzopFormat reports input that is not a well-formed lzop stream:
	// bad magic, impossible sizes, LZO data that does not decode.
	ErrLzopFormat = errors.New("malformed stream")
	// ErrLzopUnsupported reports a valid lzop feature this reader does
	// not implement: methods other than LZO1X, filters, newer versions.
	ErrLzopUnsupported = errors.New("unsupported")
)

// lzopError places an error in the compressed stream. Offsets are where
// the header or block starts, so a hex dump of the file finds it.
type lzopError struct {
	what   string // "header", "extra field" or "block"
	offset int64
	err    error // an ErrLzop* kind, io.ErrUnexpectedEOF, or a read error
	detail string
}

func (e *lzopError) Error() string {
	s := fmt.Sprintf("lzop: %s at offset 0x%x: %v", e.what, e.offset, e.err)
	if e.detail != "" {
		s += ": " + e.detail
	}
	return s
}

func (e *lzopError) Unwrap() error { return e.err }

// lzopReader decompresses an lzop stream. It reads exactly up to the end
// marker, so whatever follows in r is left unread. lzop's blocks are
// independent, so they are checked and decoded on several cores while one
// goroutine reads them in order.
type lzopReader struct {
	r     io.Reader
	off   int64  // bytes consumed from r
	flags uint32 // header flags: which checksums each block carries
}

// lzopBlock is one block in flight: its header fields and buffers, which
// the pipeline recycles.
type lzopBlock struct {
	start      int64 // offset of the block header, for errors
	flags      uint32
	dstLen     int
	compressed bool
	sums       [4 * 4]byte
	nSums      int // of sums, the data checksums first
	nDataSums  int
	src, dst   []byte
	out        []byte // the decoded block: src or dst
}

// newLzopReader reads the lzop header from r and returns a reader of the
// decompressed data. Every checksum the stream carries is verified; a
// block's data is returned only after its checksums match.
func newLzopReader(r io.Reader, workers int) (io.ReadCloser, error) {
	z := &lzopReader{r: r}
	if err := z.readHeader(); err != nil {
		return nil, err
	}
	return startChunks(func(ctx context.Context, emit func([]byte) error) error {
		pipe := pipeline.NewOrdered(ctx, chunkJobs(budget.Lzop, 2*lzopMaxBlockSize, workers),
			func(_ context.Context, b *lzopBlock) error { return b.decode() },
			func(b *lzopBlock) error { return emit(b.out) })
		for {
			j, err := pipe.Next()
			if err != nil {
				return pipe.Close()
			}
			if err := z.readBlock(&j.V); err != nil {
				if err == io.EOF {
					return pipe.Close()
				}
				return endWith(pipe, err)
			}
			pipe.Submit(j)
		}
	}), nil
}

// readFull fills b and counts the bytes. In lzop every read is inside a
// structure that the end marker has not closed yet, so running out of
// input is always io.ErrUnexpectedEOF.
func (z *lzopReader) readFull(b []byte) error {
	n, err := io.ReadFull(z.r, b)
	z.off += int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func (z *lzopReader) readHeader() error {
	var magic [len(lzopMagic)]byte
	if err := z.readFull(magic[:]); err != nil {
		return &lzopError{what: "header", offset: 0, err: err}
	}
	if magic != lzopMagic {
		return &lzopError{what: "header", offset: 0, err: ErrLzopFormat, detail: "bad magic, not an lzop file"}
	}
	start := z.off
	herr := func(err error, format string, args ...any) error {
		return &lzopError{what: "header", offset: start, err: err, detail: fmt.Sprintf(format, args...)}
	}

	// h collects the header bytes its checksum covers. The longest
	// header is 2+10+4+13 fixed bytes and a 255-byte name.
	var buf [2 + 10 + 4 + 13 + 255]byte
	h := buf[:0]
	read := func(n int) ([]byte, error) {
		h = h[:len(h)+n]
		b := h[len(h)-n:]
		return b, z.readFull(b)
	}
	truncated := func(err error) error {
		return &lzopError{what: "header", offset: start, err: err}
	}

	b, err := read(2)
	if err != nil {
		return truncated(err)
	}
	version := binary.BigEndian.Uint16(b)
	if version < lzopVersionMin {
		return herr(ErrLzopFormat, "version 0x%04x predates lzop 0.90", version)
	}
	newHeader := version >= lzopVersionNewHeader
	var (
		method byte
		flags  uint32
	)
	if newHeader {
		// lib version, version needed, method, level, flags
		if b, err = read(10); err != nil {
			return truncated(err)
		}
		needed := binary.BigEndian.Uint16(b[2:])
		if needed > lzopVersionMax {
			return herr(ErrLzopUnsupported, "stream needs lzop %x.%03x, this reader knows up to %x.%03x",
				needed>>12, needed&0xfff, lzopVersionMax>>12, lzopVersionMax&0xfff)
		}
		if needed < lzopVersionMin {
			return herr(ErrLzopFormat, "version needed to extract 0x%04x predates lzop 0.90", needed)
		}
		method, flags = b[4], binary.BigEndian.Uint32(b[6:])
	} else {
		// lib version, method, flags
		if b, err = read(7); err != nil {
			return truncated(err)
		}
		method, flags = b[2], binary.BigEndian.Uint32(b[3:])
	}
	var filter uint32
	if flags&lzopFilter != 0 {
		if b, err = read(4); err != nil {
			return truncated(err)
		}
		filter = binary.BigEndian.Uint32(b)
	}
	// mode, mtime low, [mtime high], name length
	n := 9
	if newHeader {
		n = 13
	}
	if b, err = read(n); err != nil {
		return truncated(err)
	}
	if _, err = read(int(b[n-1])); err != nil { // the name
		return truncated(err)
	}
	var sum [4]byte
	if err := z.readFull(sum[:]); err != nil {
		return truncated(err)
	}
	got, kind := lzopChecksum(flags, h)
	if want := binary.BigEndian.Uint32(sum[:]); got != want {
		return herr(ErrLzopChecksum, "%s of the header is 0x%08x, the stream says 0x%08x", kind, got, want)
	}

	// Checked after the checksum, as lzop does, so that a corrupt header
	// is reported as corrupt rather than as an exotic feature.
	switch {
	case method < 1 || method > 3:
		return herr(ErrLzopUnsupported, "method %d is not LZO1X (1, 2 or 3)", method)
	case flags&lzopFlagsUnknown != 0:
		return herr(ErrLzopUnsupported, "unknown flags 0x%08x", flags&lzopFlagsUnknown)
	case filter != 0:
		// lzop --filter: a delta filter vzdump never asks for.
		return herr(ErrLzopUnsupported, "filter %d (lzop --filter)", filter)
	}
	z.flags = flags
	if flags&lzopExtraField != 0 {
		return z.skipExtraField()
	}
	return nil
}

// lzopChecksum returns the header checksum lzop would store for b.
func lzopChecksum(flags uint32, b []byte) (uint32, string) {
	if flags&lzopHeaderCRC32 != 0 {
		return crc32.ChecksumIEEE(b), "crc32"
	}
	return adler32.Checksum(b), "adler32"
}

// skipExtraField reads past the extra field, which lzop defines but never
// writes, verifying its checksum. It is hashed as it streams by, so a
// hostile length costs reading, not memory.
func (z *lzopReader) skipExtraField() error {
	start := z.off
	var h hash.Hash32 = adler32.New()
	kind := "adler32"
	if z.flags&lzopHeaderCRC32 != 0 {
		h, kind = crc32.NewIEEE(), "crc32"
	}
	var b [4]byte
	if err := z.readFull(b[:]); err != nil {
		return &lzopError{what: "extra field", offset: start, err: err}
	}
	h.Write(b[:]) // the checksum covers the length too
	n := int64(binary.BigEndian.Uint32(b[:]))
	copied, err := io.CopyN(h, z.r, n)
	z.off += copied
	if err == nil {
		err = z.readFull(b[:])
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return &lzopError{what: "extra field", offset: start, err: err}
	}
	if got, want := h.Sum32(), binary.BigEndian.Uint32(b[:]); got != want {
		return &lzopError{what: "extra field", offset: start, err: ErrLzopChecksum,
			detail: fmt.Sprintf("%s is 0x%08x, the stream says 0x%08x", kind, got, want)}
	}
	return nil
}

// lzopBlockSum is one checksum of a block header.
type lzopBlockSum struct {
	flag uint32
	kind string // for messages
	of   string // "uncompressed" or "compressed"
	sum  func([]byte) uint32
}

// Block checksums in stream order; each is present if its flag is set,
// the compressed ones only if the block is compressed at all.
var (
	lzopDataSums = []lzopBlockSum{
		{lzopAdler32D, "adler32", "uncompressed", adler32.Checksum},
		{lzopCRC32D, "crc32", "uncompressed", crc32.ChecksumIEEE},
	}
	lzopCompressedSums = []lzopBlockSum{
		{lzopAdler32C, "adler32", "compressed", adler32.Checksum},
		{lzopCRC32C, "crc32", "compressed", crc32.ChecksumIEEE},
	}
)

// readBlock reads the next block's header and data into b, or returns
// io.EOF at the end marker.
func (z *lzopReader) readBlock(b *lzopBlock) error {
	b.start, b.flags = z.off, z.flags
	berr := func(err error, format string, args ...any) error {
		return &lzopError{what: "block", offset: b.start, err: err, detail: fmt.Sprintf(format, args...)}
	}

	// Sizes and up to four checksums.
	var hdr [2 * 4]byte
	if err := z.readFull(hdr[:4]); err != nil {
		return &lzopError{what: "block", offset: b.start, err: err}
	}
	dstLen := binary.BigEndian.Uint32(hdr[:])
	if dstLen == 0 {
		return io.EOF
	}
	if dstLen > lzopMaxBlockSize {
		// 0xffffffff would be a split file, which lzop never finished.
		return berr(ErrLzopFormat, "uncompressed size %d exceeds lzop's block size of %d", dstLen, lzopMaxBlockSize)
	}
	if err := z.readFull(hdr[4:8]); err != nil {
		return &lzopError{what: "block", offset: b.start, err: err}
	}
	srcLen := binary.BigEndian.Uint32(hdr[4:])
	b.nDataSums = 4 * countSums(lzopDataSums, z.flags)
	if err := z.readFull(b.sums[:b.nDataSums]); err != nil {
		return &lzopError{what: "block", offset: b.start, err: err}
	}
	switch {
	case srcLen == 0 || srcLen > dstLen:
		return berr(ErrLzopFormat, "compressed size %d for uncompressed size %d", srcLen, dstLen)
	case uint64(dstLen) > lzopMaxExpansion*uint64(srcLen):
		return berr(ErrLzopFormat, "LZO1X cannot expand %d bytes to %d", srcLen, dstLen)
	}
	b.dstLen, b.compressed, b.nSums = int(dstLen), srcLen < dstLen, b.nDataSums
	if b.compressed {
		b.nSums += 4 * countSums(lzopCompressedSums, z.flags)
		if err := z.readFull(b.sums[b.nDataSums:b.nSums]); err != nil {
			return &lzopError{what: "block", offset: b.start, err: err}
		}
	}
	if cap(b.src) < int(srcLen) {
		b.src = make([]byte, srcLen, lzopMaxBlockSize)
	}
	b.src = b.src[:srcLen]
	if err := z.readFull(b.src); err != nil {
		return &lzopError{what: "block", offset: b.start, err: err}
	}
	return nil
}

func countSums(defs []lzopBlockSum, flags uint32) int {
	n := 0
	for _, s := range defs {
		if flags&s.flag != 0 {
			n++
		}
	}
	return n
}

// decode checks the block's checksums and decompresses it into b.out.
func (b *lzopBlock) decode() error {
	berr := func(err error, format string, args ...any) error {
		return &lzopError{what: "block", offset: b.start, err: err, detail: fmt.Sprintf(format, args...)}
	}
	b.out = b.src
	if b.compressed {
		// Checked before decoding: corrupt input never reaches the
		// decompressor when the stream can prove it corrupt.
		if err := verifyLzopSums(lzopCompressedSums, b.flags, b.sums[b.nDataSums:b.nSums], b.src); err != nil {
			return berr(ErrLzopChecksum, "%v", err)
		}
		if cap(b.dst) < b.dstLen {
			b.dst = make([]byte, b.dstLen, lzopMaxBlockSize)
		}
		b.out = b.dst[:b.dstLen]
		n, err := lzo.Decompress(b.src, b.out)
		if err != nil {
			return berr(ErrLzopFormat, "LZO1X data does not decode: %v", err)
		}
		if n != b.dstLen {
			return berr(ErrLzopFormat, "LZO1X data decodes to %d bytes, the block header says %d", n, b.dstLen)
		}
	}
	if err := verifyLzopSums(lzopDataSums, b.flags, b.sums[:b.nDataSums], b.out); err != nil {
		return berr(ErrLzopChecksum, "%v", err)
	}
	return nil
}

// verifyLzopSums checks the checksums in stored, in the order of defs,
// against data.
func verifyLzopSums(defs []lzopBlockSum, flags uint32, stored, data []byte) error {
	for _, s := range defs {
		if flags&s.flag == 0 {
			continue
		}
		want := binary.BigEndian.Uint32(stored)
		stored = stored[4:]
		if got := s.sum(data); got != want {
			return fmt.Errorf("%s of the %s data is 0x%08x, the stream says 0x%08x", s.kind, s.of, got, want)
		}
	}
	return nil
}
