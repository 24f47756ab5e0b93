package vma

import (
	"io"

	"github.com/vmatool/vmatool/internal/codec"
)

// input is where a Reader's bytes come from. A plain stream is copied
// into the Reader's buffers. A decoder that hands over its own buffers
// (codec.ChunkReader: vmatool's parallel zstd frames, lzop) is read in
// place: data that is not kept (Verify, devices without a target) is
// skipped without being touched, and Extract writes blocks straight from
// the decoded chunk.
type input struct {
	r      io.Reader
	chunks codec.ChunkReader // nil for a plain stream
	cur    []byte            // unread part of the current chunk
	err    error             // sticky, from Chunk
	skip   []byte            // a plain stream's discard buffer
}

func newInput(r io.Reader) *input {
	in := &input{r: r}
	if c, ok := r.(codec.ChunkReader); ok {
		in.chunks = c
	}
	return in
}

// fill makes the current chunk non-empty, or returns why it cannot be.
func (in *input) fill() error {
	for len(in.cur) == 0 {
		if in.err != nil {
			return in.err
		}
		in.cur, in.err = in.chunks.Chunk()
	}
	return nil
}

// Read makes the input an io.Reader, for the archive header and for a
// salvaging Reader's search, which read through it.
func (in *input) Read(p []byte) (int, error) {
	if in.chunks == nil {
		return in.r.Read(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if err := in.fill(); err != nil {
		return 0, err
	}
	n := copy(p, in.cur)
	in.cur = in.cur[n:]
	return n, nil
}

// readFull fills p, with io.ReadFull's results.
func (in *input) readFull(p []byte) (int, error) {
	if in.chunks == nil {
		return io.ReadFull(in.r, p)
	}
	n := 0
	for n < len(p) {
		if err := in.fill(); err != nil {
			return n, fullErr(n, err)
		}
		k := copy(p[n:], in.cur)
		in.cur = in.cur[k:]
		n += k
	}
	return n, nil
}

// discard skips n bytes, with the results io.ReadFull would give for
// reading them. A plain stream is read through a buffer small enough to
// stay in the CPU cache, as cat's is, rather than streamed through memory.
func (in *input) discard(n int) (int, error) {
	done := 0
	if d, ok := in.r.(discarder); ok && in.chunks == nil {
		k, err := d.Discard(n)
		return k, fullErr(k, err)
	}
	if in.chunks == nil {
		if in.skip == nil {
			in.skip = make([]byte, discardChunk)
		}
		for done < n {
			k, err := io.ReadFull(in.r, in.skip[:min(n-done, len(in.skip))])
			done += k
			if err != nil {
				return done, fullErr(done, err)
			}
		}
		return done, nil
	}
	for done < n {
		if err := in.fill(); err != nil {
			return done, fullErr(done, err)
		}
		k := min(n-done, len(in.cur))
		in.cur = in.cur[k:]
		done += k
	}
	return done, nil
}

// buffered is how many bytes the current chunk still holds: a block that
// fits is returned in place by block, without fetching the next chunk.
func (in *input) buffered() int { return len(in.cur) }

// block returns the next BlockSize bytes: in place when the current chunk
// holds them, else assembled in scratch from the chunks they straddle,
// which releases the chunks before. n counts the bytes consumed, also on
// failure.
func (in *input) block(scratch *[BlockSize]byte) (b []byte, n int, err error) {
	if len(in.cur) == 0 && in.chunks != nil {
		if err := in.fill(); err != nil {
			return nil, 0, err
		}
	}
	if len(in.cur) >= BlockSize {
		b, in.cur = in.cur[:BlockSize], in.cur[BlockSize:]
		return b, BlockSize, nil
	}
	n, err = in.readFull(scratch[:])
	return scratch[:n], n, err
}

// discarder skips bytes of a buffered stream without copying them out:
// bufio.Reader, which vma.Decompress returns for a stream that is not
// compressed.
type discarder interface {
	Discard(n int) (int, error)
}

// fullErr turns the end of the stream after n bytes of a read into
// io.ReadFull's errors.
func fullErr(n int, err error) error {
	if err == io.EOF && n > 0 {
		return io.ErrUnexpectedEOF
	}
	return err
}
