package codec

import (
	"bytes"
	"io"
	"testing"
)

// TestPlainPassesThrough: a stream that is not compressed comes back byte
// for byte whatever its length (shorter than Detect's bytes included),
// and its reader skips with Discard, as vma's Verify does, ending where
// io.ReadFull would.
func TestPlainPassesThrough(t *testing.T) {
	for _, n := range []int{0, 1, DetectLen - 1, DetectLen, DetectLen + 1, plainBufferSize + 7} {
		data := mixedData(n, uint64(n))
		if n > 0 {
			data[0] = 'V' // no compressor's magic
		}
		r, c, err := NewReader(bytes.NewReader(data), ReadOptions{})
		if err != nil || c != None {
			t.Fatalf("%d bytes: NewReader gave %v, %v", n, c, err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: read %d bytes (%v), want them all back", n, len(got), err)
		}

		r, _, _ = NewReader(bytes.NewReader(data), ReadOptions{})
		d, ok := r.(interface{ Discard(int) (int, error) })
		if !ok {
			t.Fatalf("the plain reader %T has no Discard", r)
		}
		skip := n / 2
		if k, err := d.Discard(skip); k != skip || err != nil {
			t.Fatalf("%d bytes: Discard(%d) = %d, %v", n, skip, k, err)
		}
		rest, _ := io.ReadAll(r)
		if !bytes.Equal(rest, data[skip:]) {
			t.Fatalf("%d bytes: after Discard(%d) read %d bytes, want the rest (%d)", n, skip, len(rest), n-skip)
		}
		if k, err := d.Discard(1); k != 0 || err != io.EOF {
			t.Fatalf("%d bytes: Discard at the end = %d, %v; want 0, EOF", n, k, err)
		}
	}
}
