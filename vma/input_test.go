package vma

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vmatool/vmatool/internal/codec"
)

// chunkSource is a codec.ChunkReader over b whose pieces have the sizes
// next gives, each copied into one buffer that the next piece overwrites,
// so a reader that uses a piece after asking for the next one sees other
// bytes, as it would from a decoder reusing its frames. With fail set it
// ends with that error at offset failAt instead of at the end of b.
type chunkSource struct {
	b      []byte
	next   func() int
	buf    []byte
	failAt int
	fail   error
	pieces int
}

var _ codec.ChunkReader = (*chunkSource)(nil)

func (c *chunkSource) Chunk() ([]byte, error) {
	end := len(c.b)
	if c.fail != nil {
		end = min(end, c.failAt)
	}
	if end == 0 {
		if c.fail != nil {
			return nil, c.fail
		}
		return nil, io.EOF
	}
	n := min(max(c.next(), 1), end)
	if len(c.buf) > 0 { // the last piece is gone, as from a reused buffer
		c.buf[0] = 0x5a
		for k := 1; k < len(c.buf); k *= 2 {
			copy(c.buf[k:], c.buf[:k])
		}
	}
	if cap(c.buf) < n {
		c.buf = make([]byte, n)
	}
	c.buf = c.buf[:n]
	piece := c.buf
	copy(piece, c.b)
	c.b = c.b[n:]
	c.failAt -= n
	c.pieces++
	return piece, nil
}

func (c *chunkSource) Read(p []byte) (int, error) {
	panic("the Reader reads a ChunkReader through Chunk only")
}

func (c *chunkSource) Close() error { return nil }

// Piece patterns: odd sizes that cut blocks and headers anywhere, exactly
// a block, frames of 2 MiB, and random mixtures, with runs of pieces of a
// few bytes.
func piecePatterns() map[string]func() func() int {
	fixed := func(n int) func() func() int {
		return func() func() int { return func() int { return n } }
	}
	return map[string]func() func() int{
		"509":   fixed(509),
		"4096":  fixed(BlockSize),
		"4097":  fixed(BlockSize + 1),
		"2 MiB": fixed(2 << 20),
		"whole": fixed(1 << 40),
		"random": func() func() int {
			rng := rand.New(rand.NewPCG(3, 4))
			return func() int {
				switch rng.IntN(3) {
				case 0:
					return 1 + rng.IntN(16)
				case 1:
					return 1 + rng.IntN(3*BlockSize)
				}
				return 1 + rng.IntN(300<<10)
			}
		},
	}
}

// outcome is everything a way of reading an archive produced.
type outcome struct {
	err     string
	stats   string
	targets map[int][]byte
	writes  int
}

func (o outcome) String() string {
	return fmt.Sprintf("err %q, stats %s, %d writes", o.err, o.stats, o.writes)
}

type recordingTarget struct {
	b      []byte
	writes *int
}

func (t *recordingTarget) WriteAt(p []byte, off int64) (int, error) {
	*t.writes++
	if end := int(off) + len(p); end > len(t.b) {
		t.b = append(t.b, make([]byte, end-len(t.b))...)
	}
	return copy(t.b[off:], p), nil
}

// readArchive runs op ("verify", "next", "salvage", "extract",
// "extract-first", "extract-zeros") on the archive that in delivers.
func readArchive(in io.Reader, op string, opts ...ReaderOption) outcome {
	var o outcome
	r, err := NewReader(in, opts...)
	if err != nil {
		o.err = err.Error()
		return o
	}
	switch op {
	case "verify":
		st, err := Verify(context.Background(), r)
		if err != nil {
			o.err = err.Error()
			return o
		}
		o.stats = fmt.Sprint(st.ArchiveSize, st.Extents, st.Devices)
	case "next", "salvage":
		// The clusters as Next returns them, data and all. Salvaging,
		// the Reader reads the chunks through the pushback it keeps,
		// after the header came through Chunk.
		o.targets = map[int][]byte{}
		for {
			e, err := r.Next()
			if err != nil {
				if err != io.EOF {
					o.err = err.Error()
				}
				break
			}
			for _, c := range e.Clusters {
				o.targets[c.Device] = fmt.Appendf(o.targets[c.Device], "%d %04x ", c.Index, c.Mask)
				o.targets[c.Device] = append(o.targets[c.Device], c.Data...)
			}
		}
		if op == "salvage" {
			damage, more := r.Damage()
			o.stats = fmt.Sprint(damage, more, slices.Collect(r.Missing()))
		}
	default:
		targets := map[int]io.WriterAt{}
		mem := map[int]*recordingTarget{}
		var xo []ExtractOption
		for i, d := range r.Header().Devices {
			if op == "extract-first" && i > 0 {
				break
			}
			mem[d.ID] = &recordingTarget{b: make([]byte, d.Size), writes: &o.writes}
			targets[d.ID] = mem[d.ID]
		}
		if op == "extract-zeros" {
			xo = append(xo, WithWriteZeros())
		}
		if err := Extract(context.Background(), r, targets, xo...); err != nil {
			o.err = err.Error()
			return o // what a failed extract wrote is no result
		}
		o.targets = map[int][]byte{}
		for id, m := range mem {
			o.targets[id] = m.b
		}
		o.writes = 0 // the chunked input may split runs at its pieces
	}
	return o
}

func sameOutcome(a, b outcome) bool {
	if a.err != b.err || a.stats != b.stats || len(a.targets) != len(b.targets) {
		return false
	}
	for id, t := range a.targets {
		if !bytes.Equal(t, b.targets[id]) {
			return false
		}
	}
	return true
}

// diffArchives are archives that exercise every path of the reader: the
// vectors, valid and damaged, several devices with skipped ones and
// unaligned ends, and crafted damage of every kind.
func diffArchives(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	files, err := filepath.Glob(filepath.Join("../testdata/vectors", "*.vma"))
	if err != nil || len(files) < 5 {
		t.Fatalf("vectors: %v, %d files", err, len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	rng := rand.New(rand.NewPCG(9, 9))
	for n, sizes := range [][]int64{{3*ClusterSize + 4096 + 512}, {61 * ClusterSize, 5*ClusterSize + 8192, 1536}, {130 * ClusterSize}} {
		var buf bytes.Buffer
		w, err := NewWriter(&buf, WithUUID(testUUID))
		if err != nil {
			t.Fatal(err)
		}
		w.AddConfig("qemu-server.conf", []byte("memory: 1\n"))
		var disks [][]byte
		for i, s := range sizes {
			if _, err := w.AddDevice(fmt.Sprintf("drive-scsi%d", i), s); err != nil {
				t.Fatal(err)
			}
			d := make([]byte, s)
			for off := 0; off < len(d); off += BlockSize {
				blk := d[off:min(off+BlockSize, len(d))]
				switch rng.IntN(3) {
				case 0:
					for k := range blk {
						blk[k] = byte(rng.Uint32())
					}
				case 1:
					blk[len(blk)-1] = 1
				}
			}
			disks = append(disks, d)
		}
		// Clusters of all devices interleaved, so extents mix devices.
		for c := 0; ; c++ {
			wrote := false
			for i, d := range disks {
				if off := c * ClusterSize; off < len(d) {
					if err := w.WriteCluster(i+1, uint32(c), d[off:min(off+ClusterSize, len(d))]); err != nil {
						t.Fatal(err)
					}
					wrote = true
				}
			}
			if !wrote {
				break
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		out[fmt.Sprint("written ", n)] = buf.Bytes()
	}
	const c = ClusterSize
	full := uint16(0xffff)
	crafted := map[string][]byte{
		"unknown device":     craftArchive(t, []int64{c}, nil, ext(makeBlockInfo(full, 1, 0), makeBlockInfo(3, 9, 0))),
		"duplicated cluster": craftArchive(t, []int64{2 * c}, nil, ext(makeBlockInfo(5, 1, 0), makeBlockInfo(0, 1, 1)), ext(makeBlockInfo(full, 1, 0))),
		"block past the end": craftArchive(t, []int64{c + 8192}, nil, ext(makeBlockInfo(full, 1, 0), makeBlockInfo(0b100, 1, 1))),
		"block count":        craftArchive(t, []int64{c}, nil, craftedExtent{slots: []blockInfo{makeBlockInfo(1, 1, 0)}, blockCount: 2}),
		"extent checksum":    craftArchive(t, []int64{2 * c}, nil, ext(makeBlockInfo(full, 1, 0)), craftedExtent{slots: []blockInfo{makeBlockInfo(full, 1, 1)}, blockCount: -1, badMD5: true}),
		"lenient end":        craftArchive(t, []int64{c + 8192}, nil, ext(makeBlockInfo(full, 1, 0), makeBlockInfo(0b111, 1, 1))),
	}
	for name, b := range crafted {
		out[name] = b
	}
	return out
}

// TestChunkInputMatchesStream reads every archive, whole, cut short and
// broken by a read error, through a ChunkReader in pieces of every kind
// and as a plain stream, and requires the same result from Verify, Next
// and Extract (all devices, the first only, zeros written): the same
// data, the same statistics, the same error text with the same offsets.
func TestChunkInputMatchesStream(t *testing.T) {
	archives := diffArchives(t)
	errBroken := errors.New("broken stream")
	ops := []string{"verify", "next", "salvage", "extract", "extract-first", "extract-zeros"}
	for name, b := range archives {
		// Cut in the last extent's data, at and after an extent header,
		// and at random.
		cuts := []int{len(b), len(b) - 1, len(b) - BlockSize - 1, 12288 + 512, 12288 + 513}
		if len(b) > 20000 {
			rng := rand.New(rand.NewPCG(uint64(len(b)), 1))
			cuts = append(cuts, len(b)-BlockSize)
			for range 2 {
				cuts = append(cuts, 12288+rng.IntN(len(b)-12288))
			}
		}
		cuts = slices.DeleteFunc(cuts, func(c int) bool { return c < 0 || c > len(b) })
		for _, cut := range cuts {
			for _, broken := range []bool{false, true} {
				if broken && cut == len(b) {
					continue
				}
				for _, op := range ops {
					var lenient []ReaderOption
					if name == "lenient end" {
						lenient = append(lenient, WithLenientEnd())
					}
					if op == "salvage" {
						lenient = append(lenient, WithSalvage())
					}
					var plain io.Reader = bytes.NewReader(b[:cut])
					if broken {
						plain = io.MultiReader(bytes.NewReader(b[:cut]), iotestErr{errBroken})
					}
					want := readArchive(plain, op, lenient...)
					for pname, pattern := range piecePatterns() {
						src := &chunkSource{b: b, next: pattern(), failAt: cut, fail: io.EOF}
						if broken {
							src.fail = errBroken
						}
						got := readArchive(src, op, lenient...)
						if !sameOutcome(got, want) {
							t.Fatalf("%s cut at %d of %d (broken %v), %s, pieces %s:\nchunks: %v\nstream: %v",
								name, cut, len(b), broken, op, pname, got, want)
						}
					}
				}
			}
		}
	}
}

type iotestErr struct{ err error }

func (e iotestErr) Read([]byte) (int, error) { return 0, e.err }

// Extract from a ChunkReader writes straight from its pieces, and joins
// the blocks of a piece into runs: a disk of data that arrives in 2 MiB
// pieces takes few writes, not one per block.
func TestExtractInPlaceRuns(t *testing.T) {
	b := diffArchives(t)["written 2"] // 130 clusters of one disk
	r, err := NewReader(&chunkSource{b: b, next: func() int { return 2 << 20 }, failAt: len(b), fail: io.EOF})
	if err != nil {
		t.Fatal(err)
	}
	writes := 0
	tgt := &recordingTarget{b: make([]byte, 130*ClusterSize), writes: &writes}
	if err := Extract(context.Background(), r, map[int]io.WriterAt{1: tgt}); err != nil {
		t.Fatal(err)
	}
	blocks := r.StoredBytes(1) / BlockSize
	if writes == 0 || int64(writes) > blocks/2 {
		t.Errorf("%d writes for %d stored blocks", writes, blocks)
	}
}

// Extract from a ChunkReader under a cancelled context writes nothing and
// reports the cancellation.
func TestExtractInPlaceCancelled(t *testing.T) {
	b := diffArchives(t)["written 0"]
	r, err := NewReader(&chunkSource{b: b, next: func() int { return 1000 }, failAt: len(b), fail: io.EOF})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tgt := &countingTarget{}
	if err := Extract(ctx, r, map[int]io.WriterAt{1: tgt}); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want %v", err, context.Canceled)
	}
	if tgt.n != 0 {
		t.Errorf("%d writes after cancellation", tgt.n)
	}
}

// A read error in the middle of an extent's data names the archive offset
// where the stream broke.
func TestChunkInputErrorOffset(t *testing.T) {
	b := diffArchives(t)["written 2"]
	errBroken := errors.New("broken stream")
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	at := int(r.Header().Size) + extentHeaderSize + 5*BlockSize + 100
	for _, op := range []string{"verify", "extract"} {
		o := readArchive(&chunkSource{b: b, next: func() int { return 3000 }, failAt: at, fail: errBroken}, op)
		if want := fmt.Sprintf("reading at offset %d: broken stream", at); !strings.Contains(o.err, want) {
			t.Errorf("%s: error %q, want one with %q", op, o.err, want)
		}
	}
}
