package codec

import (
	"context"
	"io"
)

// pipeReader is the read end of a decoder that runs on goroutines of its
// own: produce writes the decoded stream, in order, into a pipe.
type pipeReader struct {
	pr     *io.PipeReader
	cancel context.CancelFunc
	done   chan struct{}
}

// startPipe runs produce on a goroutine and returns the reader of what it
// writes. produce's error (nil at a clean end) is what Read returns after
// the data.
func startPipe(produce func(ctx context.Context, w io.Writer) error) io.ReadCloser {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	p := &pipeReader{pr: pr, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		pw.CloseWithError(produce(ctx, pw))
	}()
	return p
}

func (p *pipeReader) Read(b []byte) (int, error) { return p.pr.Read(b) }

// Close stops the decoder and waits for its goroutines; it does not close
// the underlying reader.
func (p *pipeReader) Close() error {
	p.cancel()
	p.pr.Close() // a producer blocked writing fails at once
	<-p.done
	return nil
}
