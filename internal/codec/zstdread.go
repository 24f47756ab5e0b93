package codec

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/klauspost/compress/zstd"
	"github.com/vmatool/vmatool/internal/budget"
	"github.com/vmatool/vmatool/internal/pipeline"
)

// A zstd stream of several independent frames (what vmatool writes) is
// decoded one frame per job on several cores; frames are found by walking
// their block headers (zstdFrames), without decoding. A frame too large to
// hold whole (Proxmox writes one frame for the whole archive) is decoded
// by the streaming decoder from there on, which keeps memory to its
// window.
const (
	// maxParallelFrame is the largest frame content decoded as one job.
	// vmatool's frames are 2 MiB.
	maxParallelFrame = 4 << 20
	// zstd bounds a compressed block by its content size (128 KiB), so a
	// frame of maxParallelFrame is not much larger compressed.
	maxParallelCompressed = maxParallelFrame + maxParallelFrame/64 + 64<<10
)

type zstdFrame struct {
	off     int64 // compressed offset of the frame, for errors
	in, out []byte
}

// newZstdReader decodes br, which starts at a zstd frame or a skippable
// frame, on up to workers cores. The first frame's window is checked
// before it returns.
func newZstdReader(br *bufio.Reader, workers int, maxWindow int64) (io.ReadCloser, error) {
	z := newZstdFrames(br, maxWindow)
	if err := z.start(); err != nil {
		return nil, err
	}
	if !z.parallel() {
		// A stream that starts with a big frame (vzdump's archives are one
		// frame) is decoded inline by the caller's goroutine: no pipe, no
		// copy, as fast as the decoder goes.
		return newStreamDecoder(z, maxWindow)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(workers),
		zstd.WithDecoderMaxMemory(maxParallelFrame), zstd.WithDecoderMaxWindow(uint64(min(maxWindow, maxParallelFrame))))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	return startPipe(func(ctx context.Context, w io.Writer) error {
		defer dec.Close()
		return decodeFrames(ctx, z, w, dec, workers)
	}), nil
}

func decodeFrames(ctx context.Context, z *zstdFrames, w io.Writer, dec *zstd.Decoder, workers int) error {
	pipe := pipeline.NewOrdered(ctx, pipeline.Budgeted(budget.ZstdRead, 2*maxParallelFrame, workers),
		func(_ context.Context, f *zstdFrame) error {
			var err error
			f.out, err = dec.DecodeAll(f.in, f.out[:0])
			if err != nil {
				return fmt.Errorf("zstd: the frame at offset %d: %w", f.off, err)
			}
			return nil
		},
		func(f *zstdFrame) error {
			_, err := w.Write(f.out)
			return err
		})
	for {
		if err := z.start(); err != nil {
			pipe.Fail(err)
			return pipe.Close()
		}
		if z.err == io.EOF {
			return pipe.Close()
		}
		if !z.parallel() {
			return streamRest(ctx, pipe, nil, z, w)
		}
		j, err := pipe.Next()
		if err != nil {
			return pipe.Close()
		}
		j.V.off = z.off
		in, whole, err := z.readFrame(j.V.in[:0], maxParallelCompressed)
		j.V.in = in
		if err != nil {
			pipe.Fail(err)
			return pipe.Close()
		}
		if !whole {
			return streamRest(ctx, pipe, in, z, w)
		}
		pipe.Submit(j)
	}
}

// parallel reports whether the frame whose header z just read can be
// decoded as one job: its size is declared and small, and so is its window.
func (z *zstdFrames) parallel() bool {
	return z.known && z.content <= maxParallelFrame && z.window <= maxParallelFrame
}

// newStreamDecoder decodes what z passes on with one synchronous decoder,
// whose memory is its window (checked by z at every frame). The decoder's
// own goroutine pipeline measured slower than decoding inline on 2 cores.
func newStreamDecoder(r io.Reader, maxWindow int64) (io.ReadCloser, error) {
	d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxWindow(uint64(maxWindow)), zstd.WithDecoderMaxMemory(uint64(maxWindow)))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	return d.IOReadCloser(), nil
}

// streamRest delivers what the pipeline holds, then decodes the rest of
// the stream, starting with the bytes of a frame already read (head), with
// the streaming decoder.
func streamRest(ctx context.Context, pipe *pipeline.Ordered[zstdFrame], head []byte, z *zstdFrames, w io.Writer) error {
	if err := pipe.Close(); err != nil {
		return err
	}
	d, err := newStreamDecoder(io.MultiReader(bytes.NewReader(head), z), z.maxWindow)
	if err != nil {
		return err
	}
	defer d.Close()
	_, err = io.Copy(w, ctxReader{ctx, d})
	return err
}

// readFrame appends the rest of the current frame to dst and reports
// whether it was read whole; it stops early once dst would pass limit,
// leaving the rest of the frame in z.
func (z *zstdFrames) readFrame(dst []byte, limit int) ([]byte, bool, error) {
	for !(z.left == 0 && z.next == zstdFrameStart) {
		if z.left == 0 {
			if z.err = z.advance(); z.err != nil {
				return dst, false, z.err
			}
		}
		n := int(z.left)
		if len(dst)+n > limit {
			return dst, false, nil
		}
		start := len(dst)
		dst = slices.Grow(dst, n)[:start+n]
		if _, err := io.ReadFull(z, dst[start:]); err != nil {
			return dst, false, err
		}
	}
	return dst, true, nil
}

// ctxReader stops a copy once ctx is done.
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
