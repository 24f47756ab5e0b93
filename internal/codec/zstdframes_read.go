package codec

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/klauspost/compress/zstd"
	"github.com/vmatool/vmatool/internal/pipeline"
)

// A zstd stream of several independent frames (what vmatool writes) is
// decoded one frame per job on several cores; the frames are found by
// walking their block headers, without decoding. A frame too large to hold
// whole (Proxmox writes one frame for the whole archive) is decoded by the
// streaming decoder from there on, which keeps memory to its window.
const (
	zstdMagic          = 0xFD2FB528
	skippableMagicMask = 0xFFFFFFF0
	skippableMagic     = 0x184D2A50

	// maxParallelFrame is the largest frame content decoded as one job.
	// vmatool's frames are 2 MiB.
	maxParallelFrame = 4 << 20
	// zstd bounds a compressed block by its content size (128 KiB), so a
	// frame of maxParallelFrame cannot be much larger compressed.
	maxParallelCompressed = maxParallelFrame + maxParallelFrame/64 + 64<<10
	// parallelDecodeBudget bounds the jobs in flight (input and output).
	parallelDecodeBudget = 24 << 20
)

// errNotZstd is returned for bytes between frames that start neither a
// zstd frame nor a skippable one.
var errNotZstd = errors.New("not a zstd frame")

type zstdFrame struct {
	off     int64 // compressed offset of the frame, for errors
	in, out []byte
}

// zstdFramesReader is the decompressed stream; a producer goroutine reads
// frames and feeds the pipeline, whose deliverer writes to a pipe.
type zstdFramesReader struct {
	pr     *io.PipeReader
	cancel context.CancelFunc
	done   chan struct{}
}

func (z *zstdFramesReader) Read(p []byte) (int, error) { return z.pr.Read(p) }

// Close stops decoding and waits for the producer; it does not close the
// underlying reader.
func (z *zstdFramesReader) Close() error {
	z.cancel()
	z.pr.Close()
	<-z.done
	return nil
}

// newZstdReader decodes br, which starts at a zstd frame or a skippable
// frame, on up to workers cores. maxWindow caps the window of frames
// decoded by the streaming decoder.
func newZstdReader(br *bufio.Reader, workers int, maxWindow uint64) (io.ReadCloser, error) {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(workers),
		zstd.WithDecoderMaxMemory(maxParallelFrame), zstd.WithDecoderMaxWindow(maxParallelFrame))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	z := &zstdFramesReader{pr: pr, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(z.done)
		defer dec.Close()
		pw.CloseWithError(decodeFrames(ctx, br, pw, dec, workers, maxWindow))
	}()
	return z, nil
}

func decodeFrames(ctx context.Context, br *bufio.Reader, w io.Writer, dec *zstd.Decoder, workers int, maxWindow uint64) error {
	pipe := pipeline.NewOrdered(ctx, pipeline.Budgeted(parallelDecodeBudget, 2*maxParallelFrame, workers),
		func(_ context.Context, f *zstdFrame) error {
			var err error
			f.out, err = dec.DecodeAll(f.in, f.out[:0])
			if err != nil {
				return fmt.Errorf("zstd frame at compressed offset %d: %w", f.off, err)
			}
			return nil
		},
		func(f *zstdFrame) error {
			_, err := w.Write(f.out)
			return err
		})
	var off int64
	for {
		head, err := br.Peek(4)
		if len(head) == 0 && err == io.EOF {
			return pipe.Close()
		}
		if len(head) < 4 {
			pipe.Fail(fmt.Errorf("zstd: %d stray bytes at compressed offset %d", len(head), off))
			return pipe.Close()
		}
		magic := binary.LittleEndian.Uint32(head)
		switch {
		case magic&skippableMagicMask == skippableMagic:
			n, err := skipSkippable(br, off)
			if err != nil {
				pipe.Fail(err)
				return pipe.Close()
			}
			off += n
			continue
		case magic != zstdMagic:
			pipe.Fail(fmt.Errorf("zstd: at compressed offset %d: %w", off, errNotZstd))
			return pipe.Close()
		}
		j, err := pipe.Next()
		if err != nil {
			return pipe.Close()
		}
		j.V.off = off
		in, whole, err := readFrame(br, j.V.in[:0], off)
		j.V.in = in
		if err != nil {
			pipe.Fail(err)
			return pipe.Close()
		}
		if !whole {
			// Too large to hold: everything before it is delivered in
			// order, then the streaming decoder takes over here.
			if err := pipe.Close(); err != nil {
				return err
			}
			return streamRest(ctx, io.MultiReader(bytes.NewReader(in), br), w, maxWindow)
		}
		off += int64(len(in))
		pipe.Submit(j)
	}
}

// readFrame appends the frame at the front of br to dst and reports whether
// it was read whole; it stops early, leaving the rest in br, when the frame
// does not declare a content size within maxParallelFrame or grows past
// maxParallelCompressed.
func readFrame(br *bufio.Reader, dst []byte, off int64) ([]byte, bool, error) {
	hdr, err := br.Peek(5)
	if err != nil {
		return dst, false, frameErr(off, err)
	}
	fhd := hdr[4]
	fcsFlag, single, checksum, dictFlag := fhd>>6, fhd&0x20 != 0, fhd&0x04 != 0, fhd&0x03
	n := 5
	if !single {
		n++ // window descriptor
	}
	n += [4]int{0, 1, 2, 4}[dictFlag]
	fcsSize := [4]int{0, 2, 4, 8}[fcsFlag]
	if fcsFlag == 0 && single {
		fcsSize = 1
	}
	hdr, err = br.Peek(n + fcsSize)
	if err != nil {
		return dst, false, frameErr(off, err)
	}
	var content uint64
	switch fcsSize {
	case 0:
		return dst, false, nil // unknown content size: stream it
	case 1:
		content = uint64(hdr[n])
	case 2:
		content = uint64(binary.LittleEndian.Uint16(hdr[n:])) + 256
	case 4:
		content = uint64(binary.LittleEndian.Uint32(hdr[n:]))
	case 8:
		content = binary.LittleEndian.Uint64(hdr[n:])
	}
	if content > maxParallelFrame {
		return dst, false, nil
	}
	take := func(k int) error {
		if len(dst)+k > maxParallelCompressed {
			return errTooLarge
		}
		start := len(dst)
		dst = slices.Grow(dst, k)[:start+k]
		_, err := io.ReadFull(br, dst[start:])
		return err
	}
	if err := take(n + fcsSize); err != nil {
		return dst, false, frameErr(off, err)
	}
	for {
		if err := take(3); err != nil {
			if err == errTooLarge {
				return dst, false, nil
			}
			return dst, false, frameErr(off, err)
		}
		bh := uint32(dst[len(dst)-3]) | uint32(dst[len(dst)-2])<<8 | uint32(dst[len(dst)-1])<<16
		last, typ, size := bh&1 != 0, (bh>>1)&3, int(bh>>3)
		switch typ {
		case 1: // RLE: one byte stands for size bytes
			size = 1
		case 3:
			return dst, false, fmt.Errorf("zstd: reserved block type in the frame at compressed offset %d", off)
		}
		if err := take(size); err != nil {
			if err == errTooLarge {
				return dst, false, nil
			}
			return dst, false, frameErr(off, err)
		}
		if last {
			break
		}
	}
	if checksum {
		if err := take(4); err != nil && err != errTooLarge {
			return dst, false, frameErr(off, err)
		} else if err == errTooLarge {
			return dst, false, nil
		}
	}
	return dst, true, nil
}

var errTooLarge = errors.New("frame too large to decode as one job")

func frameErr(off int64, err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("zstd: frame at compressed offset %d: %w", off, err)
}

// skipSkippable consumes a skippable frame (pzstd writes them) and returns
// its length.
func skipSkippable(br *bufio.Reader, off int64) (int64, error) {
	var h [8]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, frameErr(off, err)
	}
	size := int64(binary.LittleEndian.Uint32(h[4:]))
	if n, err := br.Discard(int(size)); err != nil {
		return 0, fmt.Errorf("zstd: skippable frame at compressed offset %d: %d of %d bytes: %w", off, n, size, io.ErrUnexpectedEOF)
	}
	return 8 + size, nil
}

// streamRest decodes the rest of the stream with the streaming decoder,
// whose memory is its window (capped by maxWindow).
func streamRest(ctx context.Context, r io.Reader, w io.Writer, maxWindow uint64) error {
	d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxWindow),
		zstd.WithDecoderMaxMemory(max(maxWindow, 64<<20)))
	if err != nil {
		return err
	}
	defer d.Close()
	_, err = io.Copy(w, ctxReader{ctx, d})
	return err
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
