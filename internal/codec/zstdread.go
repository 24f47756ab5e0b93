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
//
// maxParallelFrame is the largest frame content decoded as one job.
// vmatool's frames are 2 MiB.
const maxParallelFrame = 4 << 20

// compressedBound is how large a frame of content bytes can be compressed
// (block and frame headers on incompressible data), a little generously;
// a frame larger still is decoded by the streaming decoder.
func compressedBound(content uint64) int {
	c := int(min(content, maxParallelFrame))
	return c + c/64 + 64<<10
}

type zstdFrame struct {
	off     int64 // compressed offset of the frame, for errors
	in, out []byte
}

// newZstdReader decodes br, which starts at a zstd frame or a skippable
// frame, on up to workers cores; src is the reader under br. The first
// frame's window is checked before it returns.
func newZstdReader(br *bufio.Reader, src io.Reader, workers int, maxWindow int64) (io.ReadCloser, error) {
	z := newZstdFrames(br, src, maxWindow)
	if err := z.start(); err != nil {
		return nil, err
	}
	if !z.parallel() {
		// A stream that starts with a big frame (vzdump's archives are one
		// frame) is decoded inline by the caller's goroutine: no pipe, no
		// copy, as fast as the decoder goes.
		d, err := newStreamDecoder(z, maxWindow)
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(workers),
		zstd.WithDecoderMaxMemory(maxParallelFrame), zstd.WithDecoderMaxWindow(uint64(min(maxWindow, maxParallelFrame))))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	return startChunks(func(ctx context.Context, emit func([]byte) error) error {
		defer dec.Close()
		return decodeFrames(ctx, z, emit, dec, workers)
	}), nil
}

func decodeFrames(ctx context.Context, z *zstdFrames, emit func([]byte) error, dec *zstd.Decoder, workers int) error {
	z.setDirect(true)
	pipe := pipeline.NewOrdered(ctx, chunkJobs(budget.ZstdRead, 2*maxParallelFrame, workers),
		func(_ context.Context, f *zstdFrame) error {
			var err error
			f.out, err = dec.DecodeAll(f.in, f.out[:0])
			if err != nil {
				return fmt.Errorf("zstd: the frame at offset %d: %w", f.off, err)
			}
			return nil
		},
		func(f *zstdFrame) error { return emit(f.out) })
	for {
		if err := z.start(); err != nil {
			return endWith(pipe, err)
		}
		if z.err == io.EOF {
			return pipe.Close()
		}
		if !z.parallel() {
			return streamRest(pipe, nil, z, emit)
		}
		j, err := pipe.Next()
		if err != nil {
			return pipe.Close()
		}
		j.V.off = z.off
		if need := compressedBound(z.content); cap(j.V.in) < need {
			// At once rather than as the frame arrives: growing copies.
			j.V.in = make([]byte, 0, need)
		}
		in, whole, err := z.readFrame(j.V.in[:0], compressedBound(maxParallelFrame))
		j.V.in = in
		if err != nil {
			return endWith(pipe, err)
		}
		if !whole {
			return streamRest(pipe, in, z, emit)
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
func newStreamDecoder(r io.Reader, maxWindow int64) (*zstd.Decoder, error) {
	d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxWindow(uint64(maxWindow)), zstd.WithDecoderMaxMemory(uint64(maxWindow)))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	return d, nil
}

// streamRest delivers what the pipeline holds, then decodes the rest of
// the stream, starting with the bytes of a frame already read (head), with
// the streaming decoder, emitting its own buffers; emit fails once the
// reader is closed, which stops it.
func streamRest(pipe *pipeline.Ordered[zstdFrame], head []byte, z *zstdFrames, emit func([]byte) error) error {
	if err := pipe.Close(); err != nil {
		return err
	}
	z.setDirect(false)
	d, err := newStreamDecoder(io.MultiReader(bytes.NewReader(head), z), z.maxWindow)
	if err != nil {
		return err
	}
	defer d.Close()
	_, err = d.WriteTo(emitWriter(emit))
	return err
}

// emitWriter passes each Write on as a piece of the stream; emit returns
// once the consumer is done with it, so the writer's buffer may be reused.
type emitWriter func([]byte) error

func (e emitWriter) Write(p []byte) (int, error) {
	if err := e(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// readFrame appends the rest of the current frame to dst and reports
// whether it was read whole; it stops early once dst would pass limit,
// leaving the rest of the frame in z. Each part of the frame is read
// along with the block header or checksum after it, straight into dst.
func (z *zstdFrames) readFrame(dst []byte, limit int) ([]byte, bool, error) {
	for !(z.left == 0 && z.next == zstdFrameStart) {
		if z.left == 0 { // an empty block: its successor is not read yet
			if z.err = z.advance(); z.err != nil {
				return dst, false, z.err
			}
		}
		tail := 0
		switch z.next {
		case zstdBlockHeader:
			tail = 3
		case zstdChecksum:
			tail = 4
		}
		n := int(z.left) + tail
		if len(dst)+n > limit {
			return dst, false, nil
		}
		start := len(dst)
		dst = slices.Grow(dst, n)[:start+n]
		if err := z.consume(dst[start:]); err != nil {
			z.err = shortRead(err)
			return dst, false, z.err
		}
		z.left = 0
		switch z.next {
		case zstdBlockHeader:
			size, err := z.blockHeader(dst[len(dst)-3:], z.off-3)
			if err != nil {
				z.err = err
				return dst, false, err
			}
			z.left = size
		case zstdChecksum:
			z.next = zstdFrameStart
		}
	}
	return dst, true, nil
}
