package codec

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/klauspost/compress/zstd"
)

// chunksOf reads r to its end through Chunk and returns the bytes and the
// final error (nil at io.EOF).
func chunksOf(t *testing.T, r io.Reader) ([]byte, error) {
	t.Helper()
	c, ok := r.(ChunkReader)
	if !ok {
		t.Fatalf("%T is not a ChunkReader", r)
	}
	var out []byte
	for {
		b, err := c.Chunk()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if len(b) == 0 {
			t.Fatal("Chunk returned an empty piece")
		}
		out = append(out, b...)
	}
}

// A piece stays intact until the consumer asks for the next one, even
// though the producer reuses its buffer as soon as it may: Read, Chunk and
// WriteTo all see the stream as it was emitted.
func TestChunkStreamPieces(t *testing.T) {
	produce := func(ctx context.Context, emit func([]byte) error) error {
		buf := make([]byte, 5)
		for i := range 20 {
			for k := range buf {
				buf[k] = byte('a' + i)
			}
			if err := emit(buf[:1+i%5]); err != nil {
				return err
			}
			// The consumer is done with the piece: scribble over it, as a
			// decoder reusing its buffer would.
			clear(buf)
		}
		return emit(nil) // empty pieces are not passed on
	}
	var want []byte
	for i := range 20 {
		want = append(want, bytes.Repeat([]byte{byte('a' + i)}, 1+i%5)...)
	}

	got, err := chunksOf(t, startChunks(produce))
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("Chunk: %q, %v; want %q", got, err, want)
	}
	got, err = io.ReadAll(iotest.OneByteReader(startChunks(produce)))
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("Read: %q, %v; want %q", got, err, want)
	}
	var w bytes.Buffer
	if _, err := startChunks(produce).WriteTo(&w); err != nil || !bytes.Equal(w.Bytes(), want) {
		t.Errorf("WriteTo: %q, %v; want %q", w.Bytes(), err, want)
	}

	// Read, then Chunk: Chunk returns the rest of the piece Read began
	// ("a", then one of "bb").
	s := startChunks(produce)
	var one [1]byte
	for range 2 {
		if _, err := s.Read(one[:]); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := s.Chunk(); string(b) != "b" || err != nil {
		t.Errorf("Chunk after Read began a piece: %q, %v; want its rest, \"b\"", b, err)
	}
	rest, err := chunksOf(t, s)
	if err != nil || !bytes.Equal(rest, want[3:]) {
		t.Errorf("Read then Chunk: %q, %v; want %q", rest, err, want[3:])
	}
}

// The producer's error arrives after every piece before it, and stays.
func TestChunkStreamError(t *testing.T) {
	boom := errors.New("boom")
	s := startChunks(func(ctx context.Context, emit func([]byte) error) error {
		if err := emit([]byte("data")); err != nil {
			return err
		}
		return boom
	})
	defer s.Close()
	got, err := chunksOf(t, s)
	if string(got) != "data" || err != boom {
		t.Fatalf("got %q, %v; want data, boom", got, err)
	}
	if _, err := s.Chunk(); err != boom {
		t.Errorf("Chunk after the error: %v", err)
	}
	if _, err := s.Read(make([]byte, 1)); err != boom {
		t.Errorf("Read after the error: %v", err)
	}
}

// Close stops a producer that waits for the consumer, whether it is
// emitting or waiting for a held piece to come back, and returns only
// once it has; reading afterwards fails.
func TestChunkStreamClose(t *testing.T) {
	for _, hold := range []bool{false, true} {
		stopped := make(chan error, 1)
		s := startChunks(func(ctx context.Context, emit func([]byte) error) error {
			var err error
			for err == nil {
				err = emit([]byte("x"))
			}
			stopped <- err
			return err
		})
		if hold {
			if _, err := s.Chunk(); err != nil {
				t.Fatal(err)
			}
		}
		s.Close()
		select {
		case err := <-stopped:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("hold %v: emit returned %v, want context.Canceled", hold, err)
			}
		default:
			t.Errorf("hold %v: Close returned before the producer stopped", hold)
		}
		if _, err := s.Chunk(); err == nil || err == io.EOF {
			t.Errorf("hold %v: Chunk after Close: %v", hold, err)
		}
		s.Close() // a second Close is harmless
	}
}

// frameStream encodes data as independent frames of size each and puts a
// skippable frame before every frame, as pzstd does.
func frameStreamWithSkippable(t *testing.T, data []byte, size int) []byte {
	stream, offs := frames(t, data, size)
	offs = append(offs, len(stream))
	var out []byte
	for i := range len(offs) - 1 {
		out = append(out, skippable(byte(i%16), []byte(fmt.Sprint("frame ", i)))...)
		out = append(out, stream[offs[i]:offs[i+1]]...)
	}
	return out
}

// rawFrame is a frame of data as raw blocks of at most blockSize bytes,
// led by an empty raw block, with its content size declared and a
// checksum-free end: what the frame reader must walk besides what
// klauspost's encoder makes.
func rawFrame(data []byte, blockSize int) []byte {
	b := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x80 | 0x20} // 4-byte size, single segment
	b = append(b, byte(len(data)), byte(len(data)>>8), byte(len(data)>>16), byte(len(data)>>24))
	b = append(b, 0, 0, 0) // empty raw block
	for len(data) > 0 {
		n := min(len(data), blockSize)
		bh := uint32(n) << 3
		if n == len(data) {
			bh |= 1
		}
		b = append(b, byte(bh), byte(bh>>8), byte(bh>>16))
		b = append(b, data[:n]...)
		data = data[n:]
	}
	return b
}

// Frames read straight from the source decode alike whatever sizes its
// reads come in, with skippable frames and empty blocks among them; and
// through Chunk as through Read.
func TestZstdFramesDirect(t *testing.T) {
	data := mixedData(7<<20+999, 4)
	var raw []byte
	for i := 0; i < len(data); i += 1 << 20 {
		raw = append(raw, rawFrame(data[i:min(i+1<<20, len(data))], 100_000)...)
	}
	streams := map[string][]byte{
		"frames":                         func() []byte { s, _ := frames(t, data, 2<<20); return s }(),
		"skippable before each":          frameStreamWithSkippable(t, data, 2<<20),
		"raw blocks, an empty one first": raw,
	}
	sources := map[string]func(io.Reader) io.Reader{
		"whole reads": func(r io.Reader) io.Reader { return r },
		"half reads":  iotest.HalfReader,
		"odd reads":   func(r io.Reader) io.Reader { return &oddReader{r: r} },
	}
	for sname, stream := range streams {
		for rname, wrap := range sources {
			src := wrap(bytes.NewReader(stream))
			r, err := newZstdReader(bufio.NewReaderSize(src, 1<<16), src, 2, 8<<20)
			if err != nil {
				t.Fatalf("%s, %s: %v", sname, rname, err)
			}
			got, err := chunksOf(t, r)
			r.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("%s, %s: %d bytes, %v; want the %d encoded", sname, rname, len(got), err, len(data))
			}
		}
	}
}

// oddReader returns reads of 1, 2, ... 4099 bytes in turn, so reads end
// inside headers and blocks alike.
type oddReader struct {
	r io.Reader
	n int
}

func (o *oddReader) Read(p []byte) (int, error) {
	o.n = o.n%4099 + 1
	return o.r.Read(p[:min(len(p), o.n)])
}

// A damaged middle frame, read through Chunk: the frames before it arrive
// whole, then the error names the bad frame's offset.
func TestZstdFramesChunkError(t *testing.T) {
	data := mixedData(10<<20, 2)
	stream, offs := frames(t, data, 2<<20)
	bad := bytes.Clone(stream)
	mid := offs[3] + (offs[4]-offs[3])/2
	bad[mid] ^= 0xff
	bad[mid+1] ^= 0x55
	dr, _, err := NewReader(bytes.NewReader(bad), ReadOptions{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer dr.Close()
	got, err := chunksOf(t, dr)
	if want := fmt.Sprintf("frame at offset %d", offs[3]); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want one naming %q", err, want)
	}
	if len(got) != 6<<20 || !bytes.Equal(got, data[:6<<20]) {
		t.Fatalf("got %d bytes before the error, want the %d of the three good frames intact", len(got), 6<<20)
	}
}

// Closing a reader of frames while its consumer holds a piece and the
// workers are blocked stops every goroutine it started.
func TestZstdFramesCloseStopsGoroutines(t *testing.T) {
	data := mixedData(16<<20, 5)
	stream, _ := frames(t, data, 2<<20)
	before := runtime.NumGoroutine()
	for range 5 {
		dr, _, err := NewReader(bytes.NewReader(stream), ReadOptions{Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dr.(ChunkReader).Chunk(); err != nil {
			t.Fatal(err)
		}
		dr.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after Close, %d before", n, before)
	}
}

// Close may be called while another goroutine is inside Chunk or Read, as
// the pipe this replaced allowed: Extract's decoding goroutine for a
// salvaging Reader goes on reading after a cancelled Extract has returned
// and its caller closes the decoder. The reader then fails, and neither
// side touches the other's state (go test -race).
func TestChunkStreamCloseWhileReading(t *testing.T) {
	for _, op := range []string{"chunk", "read", "hold"} {
		s := startChunks(func(ctx context.Context, emit func([]byte) error) error {
			if op == "hold" {
				if err := emit([]byte("x")); err != nil {
					return err
				}
			}
			<-ctx.Done()
			return ctx.Err()
		})
		if op == "hold" {
			if _, err := s.Chunk(); err != nil {
				t.Fatal(err)
			}
		}
		got := make(chan error, 1)
		go func() {
			var err error
			if op == "read" {
				_, err = s.Read(make([]byte, 10))
			} else {
				_, err = s.Chunk()
			}
			got <- err
		}()
		time.Sleep(10 * time.Millisecond) // let it block
		s.Close()
		select {
		case err := <-got:
			if err == nil || err == io.EOF {
				t.Errorf("%s: a read cut short by Close returned %v", op, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: a read blocked across Close", op)
		}
		if _, err := s.Chunk(); err == nil || err == io.EOF {
			t.Errorf("%s: Chunk after Close: %v", op, err)
		}
	}
}

// A stream that ends in the middle of a frame, or runs into garbage after
// one, still delivers every whole frame before it, though the producer
// finds the end while the workers are still decoding those frames: the
// consumer learns where the data stops, as a plain stream would tell it.
// Slow consumers make sure the frames are decoded and waiting.
func TestZstdFramesTruncatedDeliversWholeFrames(t *testing.T) {
	data := mixedData(8<<20, 3)
	stream, offs := frames(t, data, 256<<10)
	for _, tail := range []string{"mid-frame", "garbage", "skippable cut"} {
		var in []byte
		switch tail {
		case "mid-frame":
			in = stream[:offs[20]+(offs[21]-offs[20])/2]
		case "garbage":
			in = append(bytes.Clone(stream[:offs[20]]), "not a frame"...)
		case "skippable cut":
			in = append(bytes.Clone(stream[:offs[20]]), skippable(0, make([]byte, 100))[:50]...)
		}
		dr, _, err := NewReader(bytes.NewReader(in), ReadOptions{Workers: 4})
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		c := dr.(ChunkReader)
		for {
			b, cerr := c.Chunk()
			if cerr != nil {
				err = cerr
				break
			}
			got = append(got, b...)
			time.Sleep(2 * time.Millisecond)
		}
		dr.Close()
		if err == nil || err == io.EOF {
			t.Errorf("%s: the stream ended cleanly", tail)
		}
		if want := 20 * 256 << 10; len(got) != want || !bytes.Equal(got, data[:want]) {
			t.Errorf("%s: %d bytes before %v, want the %d of the whole frames", tail, len(got), err, want)
		}
	}
}

// The same for lzop: a stream cut inside a block delivers every whole
// block before it.
func TestLzopTruncatedDeliversWholeBlocks(t *testing.T) {
	var blocks []lzopTestBlock
	var want []byte
	for i := range 40 {
		blocks = append(blocks, lzoRun(byte('a'+i%26)))
		want = append(want, blocks[i].data...)
	}
	stream := lzopSpec{flags: lzopAdler32D, blocks: blocks, noEnd: true}.build()
	in := stream[:len(stream)-3] // inside the last block
	want = want[:len(want)-37]
	dr, _, err := NewReader(bytes.NewReader(in), ReadOptions{Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer dr.Close()
	var got []byte
	c := dr.(ChunkReader)
	for {
		b, cerr := c.Chunk()
		if cerr != nil {
			err = cerr
			break
		}
		got = append(got, b...)
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("error %v, want unexpected EOF", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%d bytes before %v, want the %d of the whole blocks", len(got), err, len(want))
	}
}

// A stream that switches decoders mid-way: small frames read straight
// from the source, an empty frame, skippable frames, then a frame too big
// to decode whole, after which the streaming decoder reads the rest
// through the buffer, small frames and skippable ones included, and a
// frame of unknown size. Whatever sizes the reads come in, the output is
// the input, and a cut anywhere after the switch ends it with an error.
func TestZstdFramesSwitchToStreaming(t *testing.T) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithWindowSize(2<<20))
	if err != nil {
		t.Fatal(err)
	}
	data := mixedData(14<<20, 6)
	var stream, want []byte
	add := func(b []byte) {
		stream = enc.EncodeAll(b, stream)
		want = append(want, b...)
	}
	add(data[:1<<20])
	stream = append(stream, skippable(1, []byte("one"))...)
	add(nil) // an empty frame
	add(data[1<<20 : 3<<20])
	stream = append(stream, skippable(2, nil)...)
	switchAt := len(stream)
	add(data[3<<20 : 9<<20]) // too big for one job
	stream = append(stream, skippable(3, []byte("three"))...)
	add(data[9<<20 : 10<<20])
	add(nil)
	var unknown bytes.Buffer // streamed: no content size in the header
	zw, err := zstd.NewWriter(&unknown, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithWindowSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(data[10<<20 : 12<<20])
	zw.Close()
	stream = append(stream, unknown.Bytes()...)
	want = append(want, data[10<<20:12<<20]...)
	add(data[12<<20:])

	sources := map[string]func(io.Reader) io.Reader{
		"whole reads": func(r io.Reader) io.Reader { return r },
		"half reads":  iotest.HalfReader,
		"odd reads":   func(r io.Reader) io.Reader { return &oddReader{r: r} },
	}
	for rname, wrap := range sources {
		src := wrap(bytes.NewReader(stream))
		r, err := newZstdReader(bufio.NewReaderSize(src, 1<<16), src, 3, 8<<20)
		if err != nil {
			t.Fatal(err)
		}
		got, err := chunksOf(t, r)
		r.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes, %v; want the %d encoded", rname, len(got), err, len(want))
		}
	}
	for _, cut := range []int{switchAt + 1, switchAt + 100_000, len(stream) - 100_000, len(stream) - 1} {
		src := &oddReader{r: bytes.NewReader(stream[:cut])}
		r, err := newZstdReader(bufio.NewReaderSize(src, 1<<16), src, 3, 8<<20)
		if err != nil {
			t.Fatal(err)
		}
		got, err := chunksOf(t, r)
		r.Close()
		if err == nil {
			t.Errorf("cut at %d of %d: no error", cut, len(stream))
		}
		if !bytes.Equal(got, want[:len(got)]) {
			t.Errorf("cut at %d of %d: the %d bytes before the error differ", cut, len(stream), len(got))
		}
	}
}
