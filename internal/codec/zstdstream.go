package codec

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The zstd frame layout, as far as zstdFrames needs it (RFC 8878 §3.1):
//
//	frame        magic 0xFD2FB528 (little endian), frame header, blocks,
//	             [content checksum, 4 bytes]
//	frame header descriptor byte, [window descriptor], [dictionary id],
//	             [frame content size]
//	block        3-byte header (last flag, type, size), then size bytes
//	             (1 byte for an RLE block)
//	skippable    magic 0x184D2A50..0x184D2A5F, size (4 bytes), size bytes
const (
	zstdMagic          = 0xFD2FB528
	zstdSkippableMagic = 0x184D2A50 // low four bits are free
	zstdMinWindow      = 1 << 10
)

// ErrWindowTooLarge reports a zstd frame whose window, the history its
// decoder must hold, is above the limit. It arrives as a *WindowError.
var ErrWindowTooLarge = errors.New("zstd window above the limit")

// WindowError reports a zstd frame that needs a larger window than the
// decoder was allowed (see WithMaxWindow).
type WindowError struct {
	Offset int64 // of the frame, in the compressed stream
	Window int64 // bytes the frame needs
	Limit  int64 // bytes allowed
}

func (e *WindowError) Error() string {
	return fmt.Sprintf("zstd: the frame at offset %d needs a window of %s, above the limit of %s",
		e.Offset, sizeText(e.Window), sizeText(e.Limit))
}

func (e *WindowError) Unwrap() error { return ErrWindowTooLarge }

// sizeText writes n in the largest binary unit that divides it exactly.
func sizeText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// zstdFrames passes a zstd stream on to the decoder, minus its skippable
// frames, reading each frame header before the decoder does. That way a
// window over the limit is refused with an error that names it (the
// decoder says only "window size exceeded"), and skippable frames, which
// pzstd writes before every frame, never reach the decoder, which would
// announce each one on standard error.
//
// Decoding frames in parallel, it reads each frame straight from src into
// the frame's buffer (direct): with bufio in between, every compressed byte
// was copied twice. A frame header is then peeked with a read of just its
// bytes (ahead), and each block header is read along with the data before
// it, so nothing is read past the frame.
type zstdFrames struct {
	r         *bufio.Reader
	src       io.Reader // the reader under r, for direct reads; nil: none
	direct    bool
	ahead     []byte // peeked from src, not consumed; only when r is empty
	aheadBuf  [32]byte
	maxWindow int64
	off       int64 // compressed bytes consumed from the stream
	left      int64 // bytes of the current frame part still to pass on
	next      zstdPart
	checksum  bool // the current frame ends with a content checksum
	known     bool // the current frame declares its content size
	content   uint64
	window    uint64 // of the current frame
	err       error  // sticky; io.EOF after the last frame
}

// zstdPart is what follows in the stream when left reaches 0.
type zstdPart int

const (
	zstdFrameStart zstdPart = iota
	zstdBlockHeader
	zstdChecksum
)

// newZstdFrames reads the stream from r; src, if not nil, is the reader
// under r, which direct reads use once r's buffer is empty.
func newZstdFrames(r *bufio.Reader, src io.Reader, maxWindow int64) *zstdFrames {
	z := &zstdFrames{r: r, src: src, maxWindow: maxWindow}
	z.ahead = z.aheadBuf[:0]
	return z
}

// setDirect switches direct reads on or off; the streaming decoder reads
// through r's large buffer.
func (z *zstdFrames) setDirect(on bool) { z.direct = on && z.src != nil }

// consume reads exactly len(p) bytes of the stream into p: what was peeked
// first, then what r holds, then, direct, straight from src.
func (z *zstdFrames) consume(p []byte) error {
	n := copy(p, z.ahead)
	z.ahead = z.aheadBuf[:copy(z.aheadBuf[:], z.ahead[n:])]
	if n < len(p) && z.r.Buffered() > 0 {
		k, _ := z.r.Read(p[n:]) // only what is buffered: no read below
		n += k
	}
	var err error
	if n < len(p) {
		var src io.Reader = z.r
		if z.direct {
			src = z.src
		}
		var k int
		k, err = io.ReadFull(src, p[n:])
		n += k
	}
	z.off += int64(n)
	return err
}

// start reads up to the first frame's header, so its window is checked
// before any decoding.
func (z *zstdFrames) start() error {
	if z.err == nil && z.left == 0 {
		z.err = z.advance()
	}
	if z.err == io.EOF {
		return nil
	}
	return z.err
}

func (z *zstdFrames) Read(p []byte) (int, error) {
	for z.left == 0 {
		if z.err != nil {
			return 0, z.err
		}
		z.err = z.advance()
	}
	if int64(len(p)) > z.left {
		p = p[:z.left]
	}
	var n int
	var err error
	if len(z.ahead) > 0 {
		n = copy(p, z.ahead)
		z.ahead = z.aheadBuf[:copy(z.aheadBuf[:], z.ahead[n:])]
	} else {
		n, err = z.r.Read(p)
	}
	z.off += int64(n)
	z.left -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF // inside a frame
	}
	if err != nil {
		z.err = err
	}
	return n, err
}

// advance reads the header of the next frame part and sets how much of it
// passes on; at the end of a frame it drops skippable frames and checks
// the next frame's window.
func (z *zstdFrames) advance() error {
	switch z.next {
	case zstdBlockHeader:
		h, err := z.peek(3)
		if err != nil {
			return err
		}
		size, err := z.blockHeader(h, z.off)
		if err != nil {
			return err
		}
		z.left = 3 + size
		return nil
	case zstdChecksum:
		z.left, z.next = 4, zstdFrameStart
		return nil
	}
	for {
		h, err := z.peekUpTo(4)
		if len(h) == 0 && err == io.EOF {
			return io.EOF
		}
		if len(h) < 4 {
			return shortRead(err)
		}
		switch magic := binary.LittleEndian.Uint32(h); {
		case magic&^0xf == zstdSkippableMagic:
			if err := z.skip(); err != nil {
				return err
			}
		case magic == zstdMagic:
			return z.frameHeader()
		default:
			return fmt.Errorf("zstd: no frame at offset %d, which starts with % x: %w", z.off, h, ErrZstdFormat)
		}
	}
}

// blockHeader decodes the block header h, at offset off, and sets what
// follows the block; it returns the size of the block's data in the stream.
func (z *zstdFrames) blockHeader(h []byte, off int64) (int64, error) {
	bh := uint32(h[0]) | uint32(h[1])<<8 | uint32(h[2])<<16
	size := int64(bh >> 3)
	switch bh >> 1 & 3 {
	case 1: // RLE: one byte stands for size bytes
		size = 1
	case 3:
		return 0, fmt.Errorf("zstd: block at offset %d has the reserved type 3: %w", off, ErrZstdFormat)
	}
	if bh&1 != 0 { // the frame's last block
		z.next = zstdFrameStart
		if z.checksum {
			z.next = zstdChecksum
		}
	}
	return size, nil
}

// ErrZstdFormat reports a zstd stream whose frame structure is broken.
var ErrZstdFormat = errors.New("malformed zstd stream")

// skip reads past a skippable frame.
func (z *zstdFrames) skip() error {
	start := z.off
	h, err := z.peek(8)
	if err != nil {
		return err
	}
	size := int64(binary.LittleEndian.Uint32(h[4:]))
	if err := z.discard(8 + size); err != nil {
		return fmt.Errorf("zstd: skippable frame at offset %d holds %d bytes, more than the stream: %w",
			start, size, shortRead(err))
	}
	return nil
}

// frameHeader checks the window of the frame at the reader and passes its
// header on.
func (z *zstdFrames) frameHeader() error {
	h, err := z.peek(5)
	if err != nil {
		return err
	}
	fhd := h[4]
	single := fhd&0x20 != 0 // no window descriptor: the window is the content size
	dictSize := [4]int{0, 1, 2, 4}[fhd&3]
	fcsSize := [4]int{0, 2, 4, 8}[fhd>>6]
	if fcsSize == 0 && single {
		fcsSize = 1
	}
	n := 5 + dictSize + fcsSize
	if !single {
		n++
	}
	if h, err = z.peek(n); err != nil {
		return err
	}
	var size uint64
	fcs := h[n-fcsSize : n]
	for i := len(fcs) - 1; i >= 0; i-- {
		size = size<<8 | uint64(fcs[i])
	}
	if fcsSize == 2 {
		size += 256
	}
	z.known, z.content = fcsSize > 0, size
	var window uint64
	if single {
		window = max(size, zstdMinWindow)
	} else {
		wd := h[5]
		base := uint64(1) << (10 + wd>>3)
		window = base + base/8*uint64(wd&7)
	}
	z.window = window
	if window > uint64(z.maxWindow) {
		return &WindowError{Offset: z.off, Window: int64(min(window, 1<<62)), Limit: z.maxWindow}
	}
	z.left, z.next, z.checksum = int64(n), zstdBlockHeader, fhd&4 != 0
	return nil
}

// discard consumes n bytes of the stream.
func (z *zstdFrames) discard(n int64) error {
	k := min(int64(len(z.ahead)), n)
	z.ahead = z.aheadBuf[:copy(z.aheadBuf[:], z.ahead[k:])]
	z.off += k
	n -= k
	for n > 0 && (z.r.Buffered() > 0 || !z.direct) {
		d, err := z.r.Discard(int(min(n, 1<<30)))
		z.off += int64(d)
		n -= int64(d)
		if err != nil {
			return err
		}
	}
	if n > 0 {
		d, err := io.CopyN(io.Discard, z.src, n)
		z.off += d
		if err == nil && d < n {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	return nil
}

// peek returns the next n bytes (at most len(aheadBuf)) without consuming
// them, or why it cannot.
func (z *zstdFrames) peek(n int) ([]byte, error) {
	h, err := z.peekUpTo(n)
	if len(h) < n {
		return nil, shortRead(err)
	}
	return h, nil
}

// peekUpTo returns the next n bytes, or fewer and the error that cut them
// short. Direct, it reads no more than it must from src.
func (z *zstdFrames) peekUpTo(n int) ([]byte, error) {
	if len(z.ahead) == 0 && (z.r.Buffered() >= n || !z.direct) {
		return z.r.Peek(n)
	}
	// A reader that keeps returning nothing, and no error, fails as it
	// does under bufio, rather than spinning here.
	for empty := 0; len(z.ahead) < n; {
		var src io.Reader = z.r
		if z.direct && z.r.Buffered() == 0 {
			src = z.src
		}
		k, err := src.Read(z.aheadBuf[len(z.ahead):n])
		z.ahead = z.aheadBuf[:len(z.ahead)+k]
		if err != nil && len(z.ahead) < n {
			return z.ahead, err
		}
		if k > 0 {
			empty = 0
		} else if empty++; empty >= 100 {
			return z.ahead, io.ErrNoProgress
		}
	}
	return z.ahead[:n], nil
}

// shortRead turns the end of the input inside a frame into
// io.ErrUnexpectedEOF.
func shortRead(err error) error {
	if err == nil || err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
