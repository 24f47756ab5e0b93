package fuzz

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/vmatool/vmatool/internal/codec"
	"github.com/vmatool/vmatool/vma"
)

// pieces is a codec.ChunkReader over b, in pieces whose sizes step through
// sizes: the way a decoder that hands over its frames (vmatool's zstd,
// lzop) delivers an archive, but cut anywhere. Each piece is a copy that
// the next one overwrites, as a decoder reuses its buffers.
type pieces struct {
	b     []byte
	sizes []int
	i     int
	buf   []byte
}

var _ codec.ChunkReader = (*pieces)(nil)

func (p *pieces) Chunk() ([]byte, error) {
	if len(p.b) == 0 {
		return nil, io.EOF
	}
	clear(p.buf)
	n := min(len(p.b), p.sizes[p.i%len(p.sizes)])
	p.i++
	if cap(p.buf) < n {
		p.buf = make([]byte, n)
	}
	p.buf = p.buf[:n]
	copy(p.buf, p.b)
	p.b = p.b[n:]
	return p.buf, nil
}

func (p *pieces) Read([]byte) (int, error) { panic("read through Chunk") }
func (p *pieces) Close() error             { return nil }

// FuzzVMAChunked feeds arbitrary archives to the reader both as a plain
// stream and in pieces, as a parallel decoder hands them over, where
// Verify skips data in place and Extract writes from the pieces: both must
// give the same errors, and Extract the same disks. The input's length
// picks the piece sizes, from single bytes to more than a block.
func FuzzVMAChunked(f *testing.F) {
	addVMASeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		data = fixChecksums(data)
		plain, err := vma.NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		h := plain.Header()
		if diskBytes(h) > fuzzMaxDisks {
			return
		}
		sizes := []int{1 + len(data)%7, 4096 + len(data)%3, 511, 1 + len(data)%9000, 65536}
		ctx := context.Background()
		_, perr := vma.Verify(ctx, plain)
		chunked, err := vma.NewReader(&pieces{b: data, sizes: sizes})
		if err != nil {
			t.Fatalf("the header reads as a stream but not in pieces: %v", err)
		}
		_, cerr := vma.Verify(ctx, chunked)
		if errText(perr) != errText(cerr) {
			t.Fatalf("Verify: %v as a stream, %v in pieces", perr, cerr)
		}

		extract := func(r io.Reader) (map[int][]byte, error) {
			rd, err := vma.NewReader(r)
			if err != nil {
				t.Fatal(err)
			}
			targets := map[int]io.WriterAt{}
			disks := map[int][]byte{}
			for _, d := range h.Devices {
				disks[d.ID] = make([]byte, d.Size)
				targets[d.ID] = &target{b: disks[d.ID]}
			}
			return disks, vma.Extract(ctx, rd, targets)
		}
		want, perr := extract(bytes.NewReader(data))
		got, cerr := extract(&pieces{b: data, sizes: sizes})
		if errText(perr) != errText(cerr) {
			t.Fatalf("Extract: %v as a stream, %v in pieces", perr, cerr)
		}
		if perr != nil {
			return
		}
		for id, b := range want {
			if !bytes.Equal(b, got[id]) {
				t.Fatalf("device %d: Extract as a stream and in pieces disagree", id)
			}
		}
	})
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
