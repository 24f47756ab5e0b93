package convert_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmatool/vmatool/internal/convert"
	"github.com/vmatool/vmatool/qcow2"
	"github.com/vmatool/vmatool/vma"
)

// testDisk is a disk of the given size with a mix of clusters: all zero,
// full of data, a few blocks of data, and a partial last cluster.
func testDisk(seed uint64, size int64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, size)
	for off := int64(0); off < size; off += vma.ClusterSize {
		end := min(off+vma.ClusterSize, size)
		switch rng.IntN(4) {
		case 0: // zeros
		case 1:
			for i := off; i < end; i++ {
				b[i] = byte(rng.Uint32())
			}
		default:
			for blk := off; blk < end; blk += vma.BlockSize {
				if rng.IntN(3) == 0 {
					b[blk+int64(rng.IntN(int(min(vma.BlockSize, end-blk))))] = byte(1 + rng.IntN(255))
				}
			}
		}
	}
	return b
}

// archiveOf packs disks into an archive, writing clusters in the order
// order gives (a permutation of all (device, cluster) pairs).
func archiveOf(t *testing.T, disks [][]byte, order func(pairs [][2]int)) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := vma.NewWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	var pairs [][2]int
	for i, d := range disks {
		id, err := w.AddDevice(fmt.Sprintf("drive-scsi%d", i), int64(len(d)))
		if err != nil {
			t.Fatal(err)
		}
		for c := 0; int64(c)*vma.ClusterSize < int64(len(d)); c++ {
			pairs = append(pairs, [2]int{id, c})
		}
	}
	if order != nil {
		order(pairs)
	}
	for _, p := range pairs {
		d := disks[p[0]-1]
		off := int64(p[1]) * vma.ClusterSize
		if err := w.WriteCluster(p[0], uint32(p[1]), d[off:min(off+vma.ClusterSize, int64(len(d)))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func shuffled(seed uint64) func([][2]int) {
	return func(p [][2]int) {
		rng := rand.New(rand.NewPCG(seed, 2))
		rng.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
	}
}

// readQcow2 reads a whole image back with the package's reader.
func readQcow2(t *testing.T, path string) []byte {
	t.Helper()
	img, err := qcow2.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	b := make([]byte, img.Size())
	if _, err := img.ReadAt(b, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return b
}

func writerOpts(cs int64, compress bool) []qcow2.WriterOption {
	opts := []qcow2.WriterOption{qcow2.WithClusterSize(cs)}
	if compress {
		opts = append(opts, qcow2.WithCompression(qcow2.CompressionZstd))
	}
	return opts
}

// toQcow2 converts every device of archive to a qcow2 image with the given
// cluster size and returns the images' bytes as read back.
func toQcow2(t *testing.T, archive []byte, opts []qcow2.WriterOption, budget int64) ([][]byte, error) {
	t.Helper()
	r, err := vma.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sinks := map[int]convert.Sink{}
	var writers []*qcow2.Writer
	var qs []*convert.Qcow2Sink
	var paths []string
	for _, d := range r.Header().Devices {
		p := filepath.Join(dir, d.Name+".qcow2")
		f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		w, err := qcow2.NewWriter(f, d.Size, opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Abort()
		s := convert.NewQcow2Sink(w, d.Size, budget)
		sinks[d.ID] = s
		writers, qs, paths = append(writers, w), append(qs, s), append(paths, p)
	}
	if err := convert.FromArchive(context.Background(), r, sinks); err != nil {
		return nil, err
	}
	var out [][]byte
	for i, w := range writers {
		if err := qs[i].Flush(); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		out = append(out, readQcow2(t, paths[i]))
	}
	return out, nil
}

func TestQcow2SinkClusterSizes(t *testing.T) {
	disks := [][]byte{testDisk(1, 5<<20+4096), testDisk(2, 3<<20)}
	for _, order := range []struct {
		name string
		f    func([][2]int)
	}{{"in order", nil}, {"shuffled", shuffled(3)}} {
		archive := archiveOf(t, disks, order.f)
		for _, cs := range []int64{512, 4096, 65536, 128 << 10, 2 << 20} {
			for _, comp := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/cluster %d/compress %v", order.name, cs, comp), func(t *testing.T) {
					got, err := toQcow2(t, archive, writerOpts(cs, comp), 0)
					if err != nil {
						t.Fatal(err)
					}
					for i := range disks {
						if !bytes.Equal(got[i], disks[i]) {
							t.Errorf("device %d differs after the round trip", i)
						}
					}
				})
			}
		}
	}
}

// TestQcow2SinkBudget: 2 MiB image clusters from a shuffled archive need
// their pieces held; a small budget refuses with ErrScattered.
func TestQcow2SinkBudget(t *testing.T) {
	archive := archiveOf(t, [][]byte{testDisk(4, 16<<20)}, shuffled(5))
	_, err := toQcow2(t, archive, []qcow2.WriterOption{qcow2.WithClusterSize(2 << 20)}, 1<<20)
	if !errors.Is(err, convert.ErrScattered) {
		t.Fatalf("got %v, want ErrScattered", err)
	}
	// In order, one image cluster waits at a time: a small budget does.
	archive = archiveOf(t, [][]byte{testDisk(4, 16<<20)}, nil)
	if _, err := toQcow2(t, archive, []qcow2.WriterOption{qcow2.WithClusterSize(2 << 20)}, 3<<20); err != nil {
		t.Fatal(err)
	}
}

// streamOf streams device 1 of archive through a StreamSink.
func streamOf(archive io.Reader, window int64, giveUp bool, salvage bool) ([]byte, *convert.StreamSink, *vma.Reader, error) {
	var opts []vma.ReaderOption
	if salvage {
		opts = append(opts, vma.WithSalvage())
	}
	r, err := vma.NewReader(archive, opts...)
	if err != nil {
		return nil, nil, nil, err
	}
	var out bytes.Buffer
	s := convert.NewStreamSink(&out, r.Header().Devices[0].Size, window, giveUp)
	if err := convert.FromArchive(context.Background(), r, map[int]convert.Sink{1: s}); err != nil {
		return nil, s, r, err
	}
	err = s.Close()
	return out.Bytes(), s, r, err
}

func TestStreamSinkOrders(t *testing.T) {
	disk := testDisk(6, 8<<20+8192)
	// Cluster 100 first, then the rest in order: 100 clusters ahead.
	early := func(p [][2]int) {
		copy(p[1:101], p[0:100])
		p[0] = [2]int{1, 100}
	}
	for _, tc := range []struct {
		name   string
		order  func([][2]int)
		window int64
		ok     bool
	}{
		{"in order, one-cluster window", nil, vma.ClusterSize, true},
		{"early cluster within the window", early, 101 * vma.ClusterSize, true},
		{"early cluster beyond the window", early, 100 * vma.ClusterSize, false},
		{"shuffled, window the whole disk", shuffled(7), int64(len(disk)) + vma.ClusterSize, true},
		{"shuffled, small window", shuffled(7), 8 * vma.ClusterSize, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			archive := archiveOf(t, [][]byte{disk}, tc.order)
			out, s, _, err := streamOf(bytes.NewReader(archive), tc.window, false, false)
			if !tc.ok {
				if !errors.Is(err, convert.ErrReorderWindow) {
					t.Fatalf("got %v, want ErrReorderWindow", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, disk) || s.Written() != int64(len(disk)) {
				t.Errorf("streamed %d bytes (counted %d), not the disk's %d", len(out), s.Written(), len(disk))
			}
		})
	}
}

// TestStreamSinkGivesUp: a sink that gives up writes zeros for clusters
// that had not come, and counts those that come later as lost.
func TestStreamSinkGivesUp(t *testing.T) {
	disk := testDisk(8, 4<<20)
	for i := range vma.ClusterSize {
		disk[5*vma.ClusterSize+i] = 0x55 // cluster 5 holds data
	}
	// Cluster 5 comes last of all.
	late := func(p [][2]int) {
		five := p[5]
		copy(p[5:], p[6:])
		p[len(p)-1] = five
	}
	archive := archiveOf(t, [][]byte{disk}, late)
	out, s, _, err := streamOf(bytes.NewReader(archive), 4*vma.ClusterSize, true, false)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(disk)
	clear(want[5*vma.ClusterSize : 6*vma.ClusterSize])
	if !bytes.Equal(out, want) {
		t.Error("stream differs from the disk with cluster 5 as zeros")
	}
	if got := fmt.Sprint(s.Lost()); got != fmt.Sprint([][2]int64{{5 * vma.ClusterSize, vma.ClusterSize}}) {
		t.Errorf("lost %s", got)
	}
}

// TestStreamSinkSalvage: a truncated archive streams in full, the missing
// end as zeros.
func TestStreamSinkSalvage(t *testing.T) {
	disk := testDisk(9, 6<<20)
	archive := archiveOf(t, [][]byte{disk}, nil)
	r, _ := vma.NewReader(bytes.NewReader(archive))
	e, err := r.Next() // the first of two extents
	if err != nil {
		t.Fatal(err)
	}
	cut := e.Offset + e.Size
	out, _, rd, err := streamOf(bytes.NewReader(archive[:cut]), convert.DefaultWindow, true, true)
	if err != nil {
		t.Fatal(err)
	}
	var missing []vma.MissingRange
	for m := range rd.Missing() {
		missing = append(missing, m)
	}
	if len(missing) != 1 || missing[0].Start != 58*vma.ClusterSize || missing[0].Start+missing[0].Length != int64(len(disk)) {
		t.Fatalf("missing %v", missing)
	}
	want := bytes.Clone(disk)
	clear(want[missing[0].Start:])
	if !bytes.Equal(out, want) {
		t.Error("salvaged stream differs")
	}
}

// memSource is an in-memory Source whose holes are the given ranges.
type memSource struct {
	b     []byte
	holes [][2]int64 // sorted, disjoint
	reads [][2]int64
}

func (m *memSource) Size() int64 { return int64(len(m.b)) }
func (m *memSource) ReadAt(p []byte, off int64) (int, error) {
	// Reads are rounded out to 4 KiB blocks: only a block wholly in a
	// hole must not be read.
	for _, h := range m.holes {
		lo, hi := (h[0]+4095)/4096*4096, h[1]/4096*4096
		if lo < hi && off < hi && off+int64(len(p)) > lo {
			return 0, fmt.Errorf("read [%d, %d) touches the hole [%d, %d)", off, off+int64(len(p)), h[0], h[1])
		}
	}
	return bytes.NewReader(m.b).ReadAt(p, off)
}
func (m *memSource) NextData(off int64) (int64, int64, error) {
	for _, h := range m.holes {
		if off < h[0] {
			return off, h[0], nil
		}
		if off < h[1] {
			off = h[1]
		}
	}
	if off >= int64(len(m.b)) {
		return int64(len(m.b)), int64(len(m.b)), nil
	}
	return off, int64(len(m.b)), nil
}

type memTarget struct{ b []byte }

func (t *memTarget) WriteAt(p []byte, off int64) (int, error) {
	for i := range p {
		if t.b[off+int64(i)] != 0 {
			return 0, fmt.Errorf("offset %d written twice", off+int64(i))
		}
	}
	return copy(t.b[off:], p), nil
}

type counter struct{ n int64 }

func (c *counter) Update(n int64) { c.n += n }

func TestCopies(t *testing.T) {
	size := int64(9<<20 + 3*4096 + 512)
	b := testDisk(10, size)
	// Holes (zeros the source reports) at odd places, one past 4 chunks.
	holes := [][2]int64{{0, 4096}, {3 << 20, 3<<20 + 12345}, {4 << 20, 8 << 20}, {size - 512, size}}
	for _, h := range holes {
		clear(b[h[0]:h[1]])
	}
	src := &memSource{b: b, holes: holes}
	dst := &memTarget{b: make([]byte, size)}
	var p counter
	written, err := convert.SparseCopy(context.Background(), dst, src, &p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst.b, b) {
		t.Error("sparse copy differs")
	}
	nonZero := int64(0)
	for off := int64(0); off < size; off += 4096 {
		if !bytes.Equal(b[off:min(off+4096, size)], make([]byte, min(4096, size-off))) {
			nonZero += min(4096, size-off)
		}
	}
	if written != nonZero || p.n != size {
		t.Errorf("wrote %d bytes, want the %d of non-zero blocks; progress %d of %d", written, nonZero, p.n, size)
	}
	var out bytes.Buffer
	p = counter{}
	if err := convert.StreamCopy(context.Background(), &out, src, &p); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), b) || p.n != size {
		t.Errorf("stream copy differs (progress %d)", p.n)
	}
	// A source without an allocation map is read whole.
	out.Reset()
	if err := convert.StreamCopy(context.Background(), &out, bytes.NewReader(b), nil); !errors.Is(err, nil) || !bytes.Equal(out.Bytes(), b) {
		t.Errorf("stream copy of a plain reader: %v", err)
	}
}
