package codec

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// mixedData is half random 4 KiB blocks, half text-like ones.
func mixedData(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := 0; i < n; i += 4096 {
		blk := b[i:min(i+4096, n)]
		if rng.IntN(2) == 0 {
			for k := range blk {
				blk[k] = byte(rng.Uint32())
			}
		} else {
			for k := range blk {
				blk[k] = "abcdefgh ijkl\n"[(k*7+i)%14]
			}
		}
	}
	return b
}

// frames encodes data as independent frames of size each, as vmatool's
// writer does, and returns the stream and each frame's offset.
func frames(t testing.TB, data []byte, size int) ([]byte, []int) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithWindowSize(2<<20))
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	var offs []int
	for i := 0; i < len(data); i += size {
		offs = append(offs, len(out))
		out = enc.EncodeAll(data[i:min(i+size, len(data))], out)
	}
	return out, offs
}

func decodeAll(t testing.TB, stream []byte) ([]byte, error) {
	src := bytes.NewReader(stream)
	r, err := newZstdReader(bufio.NewReaderSize(src, 1<<16), src, 2, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return io.ReadAll(r)
}

func TestZstdFramesDecode(t *testing.T) {
	data := mixedData(9<<20+12345, 1)
	multi, _ := frames(t, data, 2<<20)

	var single bytes.Buffer
	sw, _ := zstd.NewWriter(&single, zstd.WithEncoderConcurrency(1))
	sw.Write(data)
	sw.Close()

	// A big frame after small ones: the small ones in parallel, then the
	// streaming decoder from the big one on.
	head, _ := frames(t, data[:4<<20], 2<<20)
	tail, _ := frames(t, data[4<<20:], 8<<20)

	cases := map[string][]byte{
		"frames of 2 MiB":             multi,
		"one frame, unknown size":     single.Bytes(),
		"small frames then a big one": append(append([]byte(nil), head...), tail...),
		"skippable frames around":     append(append(skippable(5, []byte("pzstd")), multi...), skippable(0, nil)...),
	}
	for name, stream := range cases {
		got, err := decodeAll(t, stream)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("%s: decoded %d bytes that differ from the %d encoded", name, len(got), len(data))
		}
	}
	empty, err := decodeAll(t, zstdEmpty(t))
	if err != nil || len(empty) != 0 {
		t.Fatalf("empty frame: %d bytes, %v", len(empty), err)
	}
}

func zstdEmpty(t testing.TB) []byte {
	enc, _ := zstd.NewWriter(nil, zstd.WithZeroFrames(true))
	return enc.EncodeAll(nil, nil)
}

// A damaged frame in the middle is reported with its compressed offset,
// and the frames before it arrive intact.
func TestZstdFramesCorruptFrame(t *testing.T) {
	data := mixedData(10<<20, 2)
	stream, offs := frames(t, data, 2<<20)
	bad := append([]byte(nil), stream...)
	mid := offs[2] + (offs[3]-offs[2])/2
	bad[mid] ^= 0xff
	bad[mid+1] ^= 0x55
	src := bytes.NewReader(bad)
	r, _ := newZstdReader(bufio.NewReader(src), src, 2, 8<<20)
	got, err := io.ReadAll(r)
	r.Close()
	want := fmt.Sprintf("frame at offset %d", offs[2])
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want one naming %q", err, want)
	}
	if len(got) < 4<<20 || !bytes.Equal(got[:4<<20], data[:4<<20]) {
		t.Fatalf("the %d bytes before the bad frame did not arrive intact (got %d)", 4<<20, len(got))
	}

	// Cut in the middle of a frame.
	_, err = decodeAll(t, stream[:offs[3]+100])
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated stream: %v, want unexpected EOF", err)
	}
	// Garbage after the last frame.
	_, err = decodeAll(t, append(append([]byte(nil), stream...), "junk"...))
	if !errors.Is(err, ErrZstdFormat) || !strings.Contains(err.Error(), fmt.Sprint(len(stream))) {
		t.Fatalf("trailing junk: %v", err)
	}
}

func BenchmarkZstdFramesDecode(b *testing.B) {
	data := mixedData(64<<20, 3)
	stream, _ := frames(b, data, 2<<20)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		src := bytes.NewReader(stream)
		r, _ := newZstdReader(bufio.NewReaderSize(src, 1<<16), src, 2, 8<<20)
		io.Copy(io.Discard, r)
		r.Close()
	}
}

// stallingReader gives its data, then nothing and no error, forever, as
// a broken reader does.
type stallingReader struct{ data []byte }

func (s *stallingReader) Read(p []byte) (int, error) {
	n := copy(p, s.data)
	s.data = s.data[n:]
	return n, nil
}

// TestZstdFramesReaderWithoutProgress: a source that stops giving bytes
// without an error fails with io.ErrNoProgress, as it does under bufio,
// instead of spinning. The stream stops two bytes into the third frame's
// header, where frames are read straight from the source.
func TestZstdFramesReaderWithoutProgress(t *testing.T) {
	stream, offs := frames(t, mixedData(3<<20, 5), 1<<20)
	src := &stallingReader{data: stream[:offs[2]+2]}
	r, err := newZstdReader(bufio.NewReaderSize(src, 16), src, 2, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("read %d bytes, then %v; want io.ErrNoProgress", len(got), err)
	}
	if len(got) != 2<<20 {
		t.Errorf("read %d bytes before the stall, want the two whole frames (%d)", len(got), 2<<20)
	}
}
