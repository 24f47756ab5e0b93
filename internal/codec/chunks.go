package codec

import (
	"context"
	"io"
	"sync/atomic"

	"github.com/vmatool/vmatool/internal/pipeline"
)

// ChunkReader is a decompressed stream that hands its decoder's own
// buffers to the consumer instead of copying them into the consumer's. A
// consumer that only needs to know where data lies (verify) then skips
// it without touching it, and one that writes it out (unpack) writes it
// straight from the decoded frame: for vmatool's parallel zstd frames and
// lzop blocks that saves a copy of every byte, and the handoff of every
// Read to another goroutine.
type ChunkReader interface {
	io.ReadCloser
	// Chunk returns the next unread piece of the stream (the rest of one
	// that Read has begun, or the next one): never empty, in order, valid
	// until the next call of Chunk, Read or Close. After the last piece it
	// returns io.EOF, or the error that ended the stream.
	Chunk() ([]byte, error)
}

// chunkStream is the read end of a decoder that runs on goroutines of its
// own. The decoder emits each decoded piece and waits until the consumer
// is done with it, so a piece is never copied on its way, and the
// decoder's free buffers, not a pipe, set how far it runs ahead.
type chunkStream struct {
	pieces  chan []byte
	release chan struct{} // the consumer is done with its piece
	cancel  context.CancelFunc
	done    chan struct{} // produce has returned; err is set
	err     error
	closed  atomic.Bool // Close was called, maybe during a Chunk or Read

	// The consumer's own state, which Close leaves alone: a goroutine may
	// still be reading when another closes the stream, as a pipe allows.
	held bool   // the consumer holds a piece, which emit waits for
	cur  []byte // unread part of the held piece, after a Read
	end  error  // sticky result after the last piece
}

var (
	_ ChunkReader = (*chunkStream)(nil)
	_ io.WriterTo = (*chunkStream)(nil)
)

// startChunks runs produce on a goroutine and returns the reader of what
// it emits. emit returns once the consumer is done with b, or with the
// context's error once the reader is closed; produce's error (nil at a
// clean end) is what the reader returns after the pieces.
func startChunks(produce func(ctx context.Context, emit func(b []byte) error) error) *chunkStream {
	ctx, cancel := context.WithCancel(context.Background())
	s := &chunkStream{
		pieces:  make(chan []byte),
		release: make(chan struct{}, 1),
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	emit := func(b []byte) error {
		if len(b) == 0 {
			return nil
		}
		select {
		case s.pieces <- b:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case <-s.release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	go func() {
		defer close(s.done)
		s.err = produce(ctx, emit)
	}()
	return s
}

func (s *chunkStream) Chunk() ([]byte, error) {
	if s.closed.Load() {
		// The producer is gone and the held piece with it.
		s.held, s.cur = false, nil
		if s.end == nil {
			s.end = io.ErrClosedPipe
		}
		return nil, s.end
	}
	if len(s.cur) > 0 {
		b := s.cur
		s.cur = nil
		return b, nil
	}
	if s.held {
		s.held, s.cur = false, nil
		s.release <- struct{}{}
	}
	if s.end != nil {
		return nil, s.end
	}
	select {
	case b := <-s.pieces:
		s.held = true
		return b, nil
	case <-s.done:
		// produce has returned, so nothing more is emitted.
		switch {
		case s.err == nil:
			s.end = io.EOF
		case s.closed.Load():
			s.end = io.ErrClosedPipe // not the cancellation's error
		default:
			s.end = s.err
		}
		return nil, s.end
	}
}

func (s *chunkStream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(s.cur) == 0 || s.closed.Load() {
		b, err := s.Chunk()
		if err != nil {
			return 0, err
		}
		s.cur = b
	}
	n := copy(p, s.cur)
	s.cur = s.cur[n:]
	return n, nil
}

// WriteTo writes the pieces to w as they come, without copying them.
func (s *chunkStream) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for {
		b, err := s.Chunk()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		k, err := w.Write(b)
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
}

// Close stops the decoder and waits for its goroutines; it does not close
// the underlying reader. It may be called while another goroutine is in
// Chunk or Read, which then fails, as a pipe's read does.
func (s *chunkStream) Close() error {
	s.closed.Store(true)
	s.cancel()
	<-s.done
	return nil
}

// chunkJobs sizes the pipeline of a decoder whose jobs become the pieces
// of a chunkStream. Besides a job per worker and the one being filled,
// the consumer holds one piece while it works on it, and one decoded piece
// waiting keeps the workers going while the consumer is slow, as unpack's
// writes are. The budget, not the core count, caps the jobs, so memory
// stays flat however many cores run.
func chunkJobs(budget, perJob int64, workers int) pipeline.Config {
	cfg := pipeline.Budgeted(budget, perJob, workers)
	cfg.InFlight = min(cfg.InFlight+2, max(int(budget/perJob), 2))
	cfg.Workers = max(min(cfg.Workers, cfg.InFlight-2), 1)
	return cfg
}

// endWith ends a decoder's stream with err, the input's failure, once the
// pipeline has delivered every job submitted before it: the data before a
// cut or broken stretch of the input reaches the consumer, as from a plain
// stream, unless a job before it failed, whose error then comes first.
// Failing the pipeline instead would drop jobs decoded but not delivered.
func endWith[T any](pipe *pipeline.Ordered[T], err error) error {
	if cerr := pipe.Close(); cerr != nil {
		return cerr
	}
	return err
}
