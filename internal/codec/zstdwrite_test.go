package codec

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// The compressed bytes must depend on the input alone. An input of exactly
// N frames once got an extra empty frame or not depending on whether the
// last frame had been written back when Close looked.
func TestFrameWriterIsDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 3 * frameSize, 3*frameSize - 1} {
		in := make([]byte, n)
		for i := 0; i < n; i += 4096 {
			if rng.IntN(2) == 0 {
				in[i] = byte(rng.Uint32())
			}
		}
		var first [32]byte
		for run := range 50 {
			var out bytes.Buffer
			w, err := NewWriter(&out, Zstd, WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// Uneven write sizes, so frames fill across calls.
			for rest := in; len(rest) > 0; {
				k := min(len(rest), 1+rng.IntN(3<<20))
				if _, err := w.Write(rest[:k]); err != nil {
					t.Fatal(err)
				}
				rest = rest[k:]
			}
			if run%2 == 1 {
				// Let every frame be written before Close looks.
				time.Sleep(20 * time.Millisecond)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(out.Bytes())
			if run == 0 {
				first = sum
				d, err := zstd.NewReader(bytes.NewReader(out.Bytes()))
				if err != nil {
					t.Fatal(err)
				}
				back, err := io.ReadAll(d)
				d.Close()
				if err != nil || !bytes.Equal(back, in) {
					t.Fatalf("%d bytes: decoded %d bytes, err %v", n, len(back), err)
				}
			} else if sum != first {
				t.Fatalf("%d bytes: run %d gave sha256 %x, run 0 gave %x", n, run, sum, first)
			}
		}
	}
}
