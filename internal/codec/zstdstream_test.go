package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// zstdTestData is compressible but not trivially so.
func zstdTestData(n int) []byte {
	rng := rand.New(rand.NewPCG(5, 6))
	b := make([]byte, n)
	for i := range b {
		b[i] = "abcdefgh"[rng.IntN(8)]
	}
	return b
}

// zstdStream compresses b as a stream of unknown size, so its frames carry
// a window descriptor (byte 5), and a content checksum.
func zstdStream(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	enc, err := zstd.NewWriter(&out, zstd.WithWindowSize(1<<20), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	enc.Write(b)
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	z := out.Bytes()
	if z[4]&0x20 != 0 {
		t.Fatal("single-segment frame: no window descriptor")
	}
	return z
}

// withWindowLog rewrites the window descriptor of the frame at the start
// of z: a larger window decodes the same, so only the claim changes.
func withWindowLog(z []byte, log byte) []byte {
	z = bytes.Clone(z)
	z[5] = (log - 10) << 3
	return z
}

func skippable(nibble byte, payload []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, zstdSkippableMagic|uint32(nibble))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

func decompressAll(in []byte, opts ...ReadOptions) ([]byte, error) {
	var o ReadOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	dr, c, err := NewReader(bytes.NewReader(in), o)
	if err != nil {
		return nil, err
	}
	defer dr.Close()
	if c != Zstd {
		return nil, errors.New("not detected as zstd: " + string(c))
	}
	return io.ReadAll(dr)
}

func TestDecompressWindow(t *testing.T) {
	data := zstdTestData(3 << 20)
	z := zstdStream(t, data)
	for _, tt := range []struct {
		name   string
		in     []byte
		opts   []ReadOptions
		window int64 // 0: accepted
	}{
		{"1 MiB, default", z, nil, 0},
		{"8 MiB, default", withWindowLog(z, 23), nil, 0},
		{"16 MiB, default", withWindowLog(z, 24), nil, 16 << 20},
		{"128 MiB, default", withWindowLog(z, 27), nil, 128 << 20},
		{"256 MiB, default", withWindowLog(z, 28), nil, 256 << 20},
		{"2 TiB, default", withWindowLog(z, 41), nil, 2 << 40},
		{"128 MiB, allowed", withWindowLog(z, 27), []ReadOptions{ReadOptions{MaxWindow: 128 << 20}}, 0},
		{"1 MiB, limit 512 KiB", z, []ReadOptions{ReadOptions{MaxWindow: 512 << 10}}, 1 << 20},
		{"after skippable frames", append(skippable(3, []byte("meta")), withWindowLog(z, 25)...), nil, 32 << 20},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decompressAll(tt.in, tt.opts...)
			if tt.window == 0 {
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("got %d bytes, %v; want the data back", len(got), err)
				}
				return
			}
			var we *WindowError
			if !errors.As(err, &we) || !errors.Is(err, ErrWindowTooLarge) {
				t.Fatalf("error %v, want a *WindowError", err)
			}
			limit := int64(DefaultMaxWindow)
			if tt.opts != nil {
				limit = 512 << 10
			}
			wantOff := int64(len(tt.in) - len(z))
			if we.Window != tt.window || we.Limit != limit || we.Offset != wantOff {
				t.Fatalf("got %+v, want window %d, limit %d, offset %d", we, tt.window, limit, wantOff)
			}
			if !strings.Contains(err.Error(), "needs a window of "+sizeText(tt.window)) {
				t.Fatalf("message %q does not name the window", err)
			}
		})
	}
}

// TestDecompressWindowSingleSegment: a frame without a window descriptor
// needs its whole content as window, and is held to the same limit.
func TestDecompressWindowSingleSegment(t *testing.T) {
	header := func(fhd byte, fcs ...byte) []byte {
		return append([]byte{0x28, 0xb5, 0x2f, 0xfd, fhd}, fcs...)
	}
	for _, tt := range []struct {
		name   string
		in     []byte
		window int64
	}{
		{"4-byte size of 20 MiB", header(0xa0, 0, 0, 0x40, 0x01), 20 << 20},
		{"8-byte size of 1 TiB", header(0xe0, 0, 0, 0, 0, 0, 1, 0, 0), 1 << 40},
		{"8-byte size of 2^64-1", header(0xe0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), 1 << 62},
		{"with a dictionary id", header(0xa1, 7, 1, 2, 3, 0x90), 0x90030201},
		{"2-byte size", header(0x60, 0xff, 0xff), 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decompressAll(tt.in)
			var we *WindowError
			if tt.window == 0 {
				if errors.As(err, &we) {
					t.Fatalf("error %v for a small frame", err)
				}
				return
			}
			if !errors.As(err, &we) || we.Window != tt.window {
				t.Fatalf("error %v, want a *WindowError for %d bytes", err, tt.window)
			}
		})
	}
}

// TestDecompressLaterFrameWindow: each frame is checked, not only the
// first; the error names the frame's offset.
func TestDecompressLaterFrameWindow(t *testing.T) {
	data := zstdTestData(1 << 20)
	first := zstdStream(t, data)
	in := append(bytes.Clone(first), withWindowLog(zstdStream(t, data), 30)...)
	got, err := decompressAll(in)
	var we *WindowError
	if !errors.As(err, &we) || we.Offset != int64(len(first)) || we.Window != 1<<30 {
		t.Fatalf("error %v, want a *WindowError at offset %d", err, len(first))
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes before the error, want the first frame's %d", len(got), len(data))
	}
}

func TestMaxWindowOption(t *testing.T) {
	if _, _, err := NewReader(bytes.NewReader(nil), ReadOptions{MaxWindow: 1023}); err == nil {
		t.Fatal("a 1023-byte window limit was accepted")
	}
	if _, _, err := NewReader(bytes.NewReader(nil), ReadOptions{MaxWindow: 1024}); err != nil {
		t.Fatal(err)
	}
}

// TestDecompressSkippableFrames: skippable frames at the start, between
// frames and at the end, with any of the 16 magics and any size, are read
// past; a stream that is nothing but skippable frames is empty.
func TestDecompressSkippableFrames(t *testing.T) {
	data := zstdTestData(1 << 20)
	a, b := zstdStream(t, data[:300000]), zstdStream(t, data[300000:])
	var all [][]byte
	for nib := range byte(16) {
		all = append(all, skippable(nib, bytes.Repeat([]byte{nib}, int(nib)*1000)))
	}
	in := bytes.Join([][]byte{
		bytes.Join(all[:5], nil), a, bytes.Join(all[5:12], nil), skippable(0, make([]byte, 200000)), b, bytes.Join(all[12:], nil),
	}, nil)
	got, err := decompressAll(in)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, %v; want the data back", len(got), err)
	}
	got, err = decompressAll(bytes.Join(all, nil))
	if err != nil || len(got) != 0 {
		t.Fatalf("only skippable frames: got %d bytes, %v; want an empty stream", len(got), err)
	}
}

// TestDecompressZstdBroken: truncations anywhere inside a frame or a
// skippable frame fail as io.ErrUnexpectedEOF; what is not a frame, and a
// reserved block type, fail as ErrZstdFormat.
func TestDecompressZstdBroken(t *testing.T) {
	data := zstdTestData(1 << 20)
	frame := zstdStream(t, data)
	in := append(skippable(1, []byte("0123456789")), frame...)
	for n := 4; n < len(in); n++ { // shorter is not even recognised as zstd
		switch {
		case n == 18: // right after the skippable frame: an empty stream
			continue
		case n > 100 && n < len(in)-10 && n%509 != 0: // every header byte, samples of the blocks
			continue
		}
		_, err := decompressAll(in[:n])
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut at %d of %d: error %v, want unexpected EOF", n, len(in), err)
		}
	}
	for _, tt := range []struct {
		name string
		in   []byte
	}{
		{"garbage after a frame", append(bytes.Clone(frame), "VMA\x00 and more"...)},
		// The frame header of zstdStream is 6 bytes; the block header
		// follows, and type 3 is reserved.
		{"reserved block type", append(bytes.Clone(frame[:6]), 0x06, 0, 0)},
	} {
		_, err := decompressAll(tt.in)
		if !errors.Is(err, ErrZstdFormat) {
			t.Errorf("%s: error %v, want ErrZstdFormat", tt.name, err)
		}
	}
}

// BenchmarkDecompressZstd decodes what Compress writes (independent 2 MiB
// frames), through the frame reader.
func BenchmarkDecompressZstd(b *testing.B) {
	data := zstdTestData(32 << 20)
	var z bytes.Buffer
	w, err := NewWriter(&z, Zstd, WriteOptions{})
	if err != nil {
		b.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		dr, _, err := NewReader(bytes.NewReader(z.Bytes()), ReadOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, dr); err != nil {
			b.Fatal(err)
		}
		dr.Close()
	}
}
