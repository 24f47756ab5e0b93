package codec

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/vmatool/vmatool/internal/budget"
	"github.com/vmatool/vmatool/internal/pipeline"
)

// frameWriter compresses a stream as a sequence of independent zstd frames,
// one per frameSize bytes of input, encoded on all cores and written in
// order. A single zstd frame can only be encoded a block at a time, since
// each block refers back into the previous ones; independent frames let
// every core work, as zstd -T0 does with its jobs. Concatenated frames are
// one valid zstd stream to every decoder, including Proxmox's zstd -d.
type frameWriter struct {
	enc       *zstd.Encoder // EncodeAll is safe for concurrent use
	pipe      *pipeline.Ordered[frame]
	cur       *pipeline.Job[frame] // being filled
	submitted bool
	closed    bool
}

// frame is one frame's input and output buffers; they cycle through the
// pipeline's free list, so nothing is allocated per frame.
type frame struct {
	in, out []byte
}

// frameSize trades compression (each frame starts without history) against
// memory (input, output and encoder history of this size per job in
// flight). On the bench's mixed image 2 MiB frames came out 0.2% larger
// than 8 MiB ones and 0.5% larger than zstd -3, at a third of the memory.
const frameSize = 2 << 20

func newFrameWriter(w io.Writer, level zstd.EncoderLevel, workers int) (*frameWriter, error) {
	cfg := pipeline.Budgeted(budget.ZstdWrite, 2*frameSize, workers)
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(cfg.Workers),
		zstd.WithWindowSize(2<<20), zstd.WithZeroFrames(true))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	fw := &frameWriter{enc: enc}
	fw.pipe = pipeline.NewOrdered(context.Background(), cfg,
		func(_ context.Context, f *frame) error {
			f.out = enc.EncodeAll(f.in, f.out[:0])
			return nil
		},
		func(f *frame) error {
			_, err := w.Write(f.out)
			f.in = f.in[:0]
			return err
		})
	return fw, nil
}

func (fw *frameWriter) Write(p []byte) (int, error) {
	if fw.closed {
		return 0, errors.New("vma: write to a closed zstd writer")
	}
	n := 0
	for len(p) > 0 {
		if fw.cur == nil {
			j, err := fw.pipe.Next()
			if err != nil {
				return n, err
			}
			if j.V.in == nil {
				j.V.in = make([]byte, 0, frameSize)
			}
			fw.cur = j
		}
		f := &fw.cur.V
		k := copy(f.in[len(f.in):frameSize], p)
		f.in = f.in[:len(f.in)+k]
		p, n = p[k:], n+k
		if len(f.in) == frameSize {
			fw.submit()
		}
	}
	return n, nil
}

func (fw *frameWriter) submit() {
	fw.pipe.Submit(fw.cur)
	fw.cur = nil
	fw.submitted = true
}

// Close compresses what is buffered, waits for every frame to be written,
// and reports the first error. It does not close the underlying writer.
// The output depends only on the input: an empty frame is added only to
// an empty stream, so that it still reads back as zstd.
func (fw *frameWriter) Close() error {
	if fw.closed {
		return fw.pipe.Close()
	}
	fw.closed = true
	if fw.cur == nil && !fw.submitted {
		if j, err := fw.pipe.Next(); err == nil {
			fw.cur = j
		}
	}
	if fw.cur != nil {
		fw.submit()
	}
	return fw.pipe.Close()
}
