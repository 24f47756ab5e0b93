package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "64M", want: 64 << 20},
		{in: "1G", want: 1 << 30},
		{in: "64GiB", want: 64 << 30},
		{in: "1.5G", want: 3 << 29},
		{in: "512", want: 512},
		{in: "4k", want: 4096},
		{in: "1T", want: 1 << 40},
		{in: "100", bad: true}, // not whole sectors
		{in: "-1G", bad: true},
		{in: "lots", bad: true},
		{in: "", bad: true},
	} {
		got, err := parseSize(tc.in)
		if tc.bad != (err != nil) || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, bad=%v", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

func genFile(t *testing.T, s genSpec) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img")
	if err := generate(p, s); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != s.Size {
		t.Fatalf("%s image is %d bytes, want %d", s.Kind, len(b), s.Size)
	}
	return b
}

// The harness compares runs across machines and months: the bytes of an
// image must depend on its spec only. A change here changes every
// published result, so it must be deliberate.
func TestGenerateDeterministic(t *testing.T) {
	a := genFile(t, genSpec{Kind: kindMixed, Size: 16 << 20, Seed: 7})
	b := genFile(t, genSpec{Kind: kindMixed, Size: 16 << 20, Seed: 7})
	if !bytes.Equal(a, b) {
		t.Fatal("same spec, different bytes")
	}
	c := genFile(t, genSpec{Kind: kindMixed, Size: 16 << 20, Seed: 8})
	if bytes.Equal(a, c) {
		t.Fatal("different seeds, same bytes")
	}
	// A bigger image starts with the smaller one.
	d := genFile(t, genSpec{Kind: kindMixed, Size: 24 << 20, Seed: 7})
	if !bytes.Equal(a, d[:len(a)]) {
		t.Fatal("image prefix depends on the image size")
	}
	sum := sha256.Sum256(genFile(t, genSpec{Kind: kindMixed, Size: 8 << 20, Seed: 1}))
	const want = "5d307161166036ec6ada9d2996162dd947c06fc2e60b7820faa33f929f50f26b"
	if got := hex.EncodeToString(sum[:]); got != want {
		t.Errorf("8 MiB mixed seed 1: sha256 %s, want %s", got, want)
	}
}

// The run mix is what makes the image stand for a real disk: check the
// shares the layout draws, and that in a file holes are holes and written
// zeros are not.
func TestMixedComposition(t *testing.T) {
	const draws = 100000
	var got [4]int
	c := newContent(1, true)
	for range draws {
		got[c.next()]++
	}
	for kind, pct := range []int{pctRandom, pctText, pctZeros, pctHoles} {
		if share := got[kind] * 100 / draws; share < pct-1 || share > pct+1 {
			t.Errorf("run kind %d: %d%%, want %d%%", kind, share, pct)
		}
	}

	const runs = 64
	p := filepath.Join(t.TempDir(), "img")
	if err := generate(p, genSpec{Kind: kindMixed, Size: runs * runSize, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	c = newContent(1, true)
	var zeroRuns, holeRuns int
	for i := range runs {
		kind := c.next()
		zero := allZero(b[i*runSize : (i+1)*runSize])
		if zero != (kind == runZeros || kind == runHole) {
			t.Fatalf("run %d: kind %d, all zero %v", i, kind, zero)
		}
		if kind == runHole {
			holeRuns++
		}
		if zero {
			zeroRuns++
		}
	}
	if holeRuns == 0 || holeRuns == zeroRuns {
		t.Fatalf("want both holes and written zeros in %d runs: %d zero runs, %d holes", runs, zeroRuns, holeRuns)
	}
	// Filesystems without hole support report everything allocated.
	if alloc := allocatedBytes(p); alloc < runs*runSize {
		// Some filesystems preallocate a little past what was written.
		if want := int64(runs-holeRuns) * runSize; alloc < want || alloc > want+runSize {
			t.Errorf("%d bytes allocated, want %d (everything but %d holes)", alloc, want, holeRuns)
		}
	}
}

func allZero(p []byte) bool {
	for _, c := range p {
		if c != 0 {
			return false
		}
	}
	return true
}

// Text runs must compress like logs do, about 3-5x with zstd's default
// level, or the zstd rows would measure an unrealistic input.
func TestTextCompressibility(t *testing.T) {
	p := make([]byte, 8<<20)
	newTextSource(1).fill(p)
	var out bytes.Buffer
	zw, err := zstd.NewWriter(&out, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(zw, bytes.NewReader(p)); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	if ratio := float64(len(p)) / float64(out.Len()); ratio < 3 || ratio > 5 {
		t.Errorf("text compresses %.2fx, want 3-5x", ratio)
	}
}

// The sparse-data image holds exactly the bytes of the dense image of its
// data size, so the pack-sparse row compares holes with no holes and
// nothing else.
func TestSparseDataMatchesDense(t *testing.T) {
	const data = 8 << 20
	sparse := genFile(t, genSpec{Kind: kindSparseData, Size: 256 << 20, Data: data, Seed: 3})
	dense := genFile(t, genSpec{Kind: kindDense, Size: data, Seed: 3})
	var got []byte
	for i := 0; i < len(sparse); i += runSize {
		if run := sparse[i : i+runSize]; !allZero(run) {
			got = append(got, run...)
		}
	}
	var want []byte
	for i := 0; i < len(dense); i += runSize {
		if run := dense[i : i+runSize]; !allZero(run) {
			want = append(want, run...)
		}
	}
	if !bytes.Equal(got, want) {
		t.Errorf("data in the sparse image (%d bytes of non-zero runs) differs from the dense image (%d)", len(got), len(want))
	}
}
