package qcow2_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/vmatool/vmatool/qcow2"
)

// Content kinds of test clusters.
const (
	fillRandom  = iota // incompressible: stored uncompressed even with compression
	fillText           // compressible
	fillPattern        // one byte repeated: compresses to almost nothing
	fillZeros          // written zeros: no cluster is stored
	fillPartial        // a few random bytes in a cluster of zeros
	fillKinds
)

// fill returns n bytes of content kind k.
func fill(rng *rand.Rand, k int, n int) []byte {
	b := make([]byte, n)
	switch k {
	case fillRandom:
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
	case fillText:
		for i := 0; i < n; {
			i += copy(b[i:], fmt.Sprintf("%06d /nix/store/%08x-system-path lib/systemd %d\n", i, rng.Uint32(), rng.IntN(100)))
		}
	case fillPattern:
		v := byte(1 + rng.IntN(255))
		for i := range b {
			b[i] = v
		}
	case fillPartial:
		for range 1 + rng.IntN(4) {
			b[rng.IntN(n)] = byte(1 + rng.IntN(255))
		}
	}
	return b
}

// sparseTestDisk makes a disk for cluster size cs that spans a little more
// than two L2 tables, with a size that is not a multiple of the cluster
// size (nor of 512 for some cluster sizes), and data in runs of one to
// three clusters: at the start, around each table boundary, in the
// partial last cluster, and in random places, of every content kind.
func sparseTestDisk(seed uint64, cs int64, maxData int64) *chunkDisk {
	rng := rand.New(rand.NewPCG(seed, uint64(cs)))
	span := cs * cs / 8
	size := 2*span + span/3 + 1536
	if cs == 512 || cs&0x5555_5555 != 0 { // even cluster bits, and 512: not a multiple of 512 either
		size = 2*span + span/3 + 1234
	}
	clusters := (size + cs - 1) / cs
	want := map[int64]bool{0: true, clusters - 1: true}
	for _, c := range []int64{span/cs - 1, span / cs, 2*span/cs - 1, 2 * span / cs} {
		want[c] = true
	}
	budget := max(maxData/cs, 12)
	for int64(len(want)) < budget && int64(len(want)) < clusters {
		want[rng.Int64N(clusters)] = true
	}
	d := &chunkDisk{size: size}
	for c := int64(0); c < clusters; c++ {
		if !want[c] {
			continue
		}
		run := int64(1 + rng.IntN(3))
		n := min(run*cs, size-c*cs)
		// Runs mix kinds by cluster, so that one job holds several.
		data := make([]byte, 0, n)
		for len(data) < int(n) {
			data = append(data, fill(rng, rng.IntN(fillKinds), int(min(cs, n-int64(len(data)))))...)
		}
		d.add(c*cs, data)
		c += run - 1
	}
	return d
}

// writeOrder is how a test gives a Writer its clusters.
type writeOrder int

const (
	inOrder  writeOrder = iota // WriteAt, runs of up to five clusters
	shuffled                   // WriteAt, one cluster at a time, in random order
	fromDisk                   // WriteFrom
)

func (o writeOrder) String() string {
	return [...]string{"in-order", "shuffled", "WriteFrom"}[o]
}

// writeImage writes d to path with a Writer.
func writeImage(t testing.TB, path string, d *chunkDisk, opts []qcow2.WriterOption, order writeOrder, seed uint64) *qcow2.Writer {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := qcow2.NewWriter(f, d.size, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	cs := w.ClusterSize()
	switch order {
	case fromDisk:
		var p progressSum
		if err := w.WriteFrom(context.Background(), d, &p); err != nil {
			t.Fatal(err)
		}
		if p.total != w.Size() {
			t.Errorf("progress reported %d bytes, want the virtual size %d", p.total, w.Size())
		}
	default:
		cl := d.clusters(cs)
		if order == shuffled {
			rng := rand.New(rand.NewPCG(seed, 99))
			rng.Shuffle(len(cl), func(i, j int) { cl[i], cl[j] = cl[j], cl[i] })
		}
		all := make([]byte, 5*cs) // WriteAt copies: one buffer does
		for i := 0; i < len(cl); {
			n := 1
			if order == inOrder {
				for n < 5 && i+n < len(cl) && cl[i+n] == cl[i]+int64(n) {
					n++
				}
			}
			off := cl[i] * cs
			buf := all[:min(int64(n)*cs, d.size-off)]
			d.ReadAt(buf, off)
			if _, err := w.WriteAt(buf, off); err != nil {
				t.Fatal(err)
			}
			i += n
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return w
}

var writerCompressions = []struct {
	name string
	opts []qcow2.WriterOption
}{
	{"none", nil},
	{"zlib", []qcow2.WriterOption{qcow2.WithCompression(qcow2.CompressionZlib)}},
	{"zstd", []qcow2.WriterOption{qcow2.WithCompression(qcow2.CompressionZstd)}},
}

// TestWriterRoundTrip writes sparse disks with every cluster size, every
// compression and every way of writing, and reads them back with the
// package's reader; the structure is checked in Go, and with qemu-img
// check and compare when it is installed (for one order per case, to
// keep the test quick).
func TestWriterRoundTrip(t *testing.T) {
	qemu := haveQemu(t)
	dir := t.TempDir()
	for cbits := uint(9); cbits <= 21; cbits++ {
		cs := int64(1) << cbits
		d := sparseTestDisk(uint64(cbits), cs, 3<<20)
		raw := filepath.Join(dir, fmt.Sprintf("c%d.raw", cs))
		if qemu {
			d.writeRaw(t, raw)
		}
		for _, comp := range writerCompressions {
			for _, order := range []writeOrder{inOrder, shuffled, fromDisk} {
				t.Run(fmt.Sprintf("%d/%s/%s", cs, comp.name, order), func(t *testing.T) {
					opts := append(slices.Clone(comp.opts), qcow2.WithClusterSize(cs))
					if order == shuffled {
						opts = append(opts, qcow2.WithWriterCacheSize(1)) // 4 tables: shuffled writes reload tables written early
					}
					path := filepath.Join(dir, "out.qcow2")
					writeImage(t, path, d, opts, order, uint64(cbits))
					checkStructure(t, path)
					ext := verifyImage(t, path, d, (d.size+511)&^511)
					if comp.opts != nil && cbits >= 12 && !hasState(ext, qcow2.Compressed) {
						t.Error("no compressed cluster")
					}
					if !hasState(ext, qcow2.Data) {
						t.Error("no uncompressed data cluster")
					}
					if qemu && order == shuffled {
						qemuCheck(t, path)
						qemuCompare(t, raw, path)
					}
				})
			}
		}
	}
}

func hasState(ext []qcow2.Extent, s qcow2.State) bool {
	for _, e := range ext {
		if e.State == s {
			return true
		}
	}
	return false
}

// TestWriterDeterministic writes the same clusters in the same order twice
// and gets the same bytes, whatever the scheduling of the workers.
func TestWriterDeterministic(t *testing.T) {
	dir := t.TempDir()
	d := sparseTestDisk(7, 4096, 2<<20)
	for _, comp := range writerCompressions[1:] {
		for _, order := range []writeOrder{shuffled, fromDisk} {
			var first []byte
			for i := range 3 {
				path := filepath.Join(dir, fmt.Sprint(i))
				opts := append(slices.Clone(comp.opts), qcow2.WithClusterSize(4096), qcow2.WithWriterWorkers(1+i))
				writeImage(t, path, d, opts, order, 5)
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					first = b
				} else if string(b) != string(first) {
					t.Fatalf("%s %s: image %d differs from the first", comp.name, order, i)
				}
			}
		}
	}
}

// TestWriterRefcountWindows writes images with 512-byte clusters, whose
// refcount blocks count 256 clusters each, with amounts of data that put
// the end of the file at every position around block boundaries, and
// enough for a refcount table of several clusters.
func TestWriterRefcountWindows(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	random := fill(rng, fillRandom, 512)
	cases := []int{0, 1, 2}
	for n := 240; n <= 262; n++ {
		cases = append(cases, n, n+256, n+256*63) // the refcount table needs a second cluster from 64 blocks
	}
	for _, n := range cases {
		path := filepath.Join(dir, "w.qcow2")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		w, err := qcow2.NewWriter(f, 512*int64(n+1), qcow2.WithClusterSize(512), qcow2.WithWriterWorkers(2))
		if err != nil {
			t.Fatal(err)
		}
		for c := range n {
			random[0] = byte(c)
			if _, err := w.WriteAt(random, int64(c)*512); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		t.Run(fmt.Sprint(n), func(t *testing.T) { checkStructure(t, path) })
	}
}

// TestWriterAllZero writes disks with no data: written zeros, holes, and a
// disk of size 0. Nothing is allocated; with ZeroClusters every cluster is
// a zero cluster.
func TestWriterAllZero(t *testing.T) {
	qemu := haveQemu(t)
	dir := t.TempDir()
	const size = 5<<20 + 4096
	zeros := &chunkDisk{size: size}
	zeros.add(0, make([]byte, size)) // written zeros, reported as data
	for _, c := range []struct {
		name  string
		d     *chunkDisk
		order writeOrder
		zero  bool
		comp  bool
	}{
		{"written-zeros", zeros, inOrder, false, true},
		{"written-zeros-from", zeros, fromDisk, false, false},
		{"hole-from", &chunkDisk{size: size}, fromDisk, false, true},
		{"empty-disk", &chunkDisk{size: 0}, fromDisk, false, false},
		{"zero-clusters", zeros, shuffled, true, true},
		{"zero-clusters-hole-from", &chunkDisk{size: size}, fromDisk, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, c.name+".qcow2")
			var opts []qcow2.WriterOption
			if c.zero {
				opts = append(opts, qcow2.WithZeroClusters())
			}
			if c.comp {
				opts = append(opts, qcow2.WithCompression(qcow2.CompressionZstd))
			}
			writeImage(t, path, c.d, opts, c.order, 1)
			checkStructure(t, path)
			ext := verifyImage(t, path, c.d, c.d.size)
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			want := qcow2.Unallocated
			files := int64(4 << 16) // header, L1, refcount table and block
			if c.zero {
				want = qcow2.Zero
				files += 1 << 16 // and one L2 table
			}
			if c.d.size == 0 {
				files -= 1 << 16 // no L1 table
			}
			if st.Size() != files {
				t.Errorf("file of %d bytes, want %d", st.Size(), files)
			}
			for _, e := range ext {
				if e.State != want {
					t.Errorf("extent %+v, want all %v", e, want)
				}
			}
			if qemu {
				qemuCheck(t, path)
				raw := filepath.Join(dir, c.name+".raw")
				c.d.writeRaw(t, raw)
				qemuCompare(t, raw, path)
			}
		})
	}
}

// TestWriterErrors covers the refusals: bad options, outputs without
// random access, writes that are not whole clusters, clusters written
// twice, and use after Close or Abort.
func TestWriterErrors(t *testing.T) {
	dir := t.TempDir()
	newFile := func() *os.File {
		f, err := os.CreateTemp(dir, "e")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	t.Run("options", func(t *testing.T) {
		for _, c := range []struct {
			size int64
			name string
			opt  qcow2.WriterOption
		}{
			{1 << 20, "cluster size 256", qcow2.WithClusterSize(256)},
			{1 << 20, "cluster size 4 MiB", qcow2.WithClusterSize(4 << 20)},
			{1 << 20, "cluster size 3 KiB", qcow2.WithClusterSize(3 << 10)},
			{1 << 20, "cluster size -512", qcow2.WithClusterSize(-512)},
			{1 << 20, "compression 2", qcow2.WithCompression(2)},
			{1 << 20, "no workers", qcow2.WithWriterWorkers(0)},
			{1 << 20, "no cache", qcow2.WithWriterCacheSize(0)},
			{-1, "negative size", nil},
			{256 << 30, "an L1 table over 32 MiB", qcow2.WithClusterSize(512)},
		} {
			var opts []qcow2.WriterOption
			if c.opt != nil {
				opts = append(opts, c.opt)
			}
			if _, err := qcow2.NewWriter(newFile(), c.size, opts...); !errors.Is(err, qcow2.ErrInvalidOption) {
				t.Errorf("NewWriter(%d, %s) = %v, want ErrInvalidOption", c.size, c.name, err)
			}
		}
		for cs := int64(512); cs <= 2<<20; cs *= 2 {
			if _, err := qcow2.NewWriter(newFile(), 1<<20, qcow2.WithClusterSize(cs)); err != nil {
				t.Errorf("cluster size %d: %v", cs, err)
			}
		}
	})
	t.Run("not-seekable", func(t *testing.T) {
		r, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		defer pw.Close()
		if _, err := qcow2.NewWriter(pw, 1<<20); !errors.Is(err, qcow2.ErrNotSeekable) {
			t.Errorf("pipe: %v, want ErrNotSeekable", err)
		}
		if _, err := qcow2.NewWriter(r, 1<<20); !errors.Is(err, qcow2.ErrNotSeekable) {
			t.Errorf("pipe: %v, want ErrNotSeekable", err)
		}
		if null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0); err == nil {
			defer null.Close()
			if _, err := qcow2.NewWriter(null, 1<<20); !errors.Is(err, qcow2.ErrNotSeekable) {
				t.Errorf("%s: %v, want ErrNotSeekable", os.DevNull, err)
			}
		}
		wo, err := os.OpenFile(filepath.Join(dir, "write-only"), os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer wo.Close()
		if _, err := qcow2.NewWriter(wo, 1<<20); !errors.Is(err, qcow2.ErrNotSeekable) {
			t.Errorf("write-only file: %v, want ErrNotSeekable", err)
		}
	})
	t.Run("unaligned", func(t *testing.T) {
		w, err := qcow2.NewWriter(newFile(), 1<<20+1000, qcow2.WithClusterSize(4096))
		if err != nil {
			t.Fatal(err)
		}
		defer w.Abort()
		b := make([]byte, 8192)
		b[0] = 1
		for _, c := range []struct {
			n   int
			off int64
		}{{4096, 512}, {4095, 0}, {8192, 1 << 20}, {4096, -4096}, {100, 1<<20 + 4096}, {999, 1 << 20}} {
			if _, err := w.WriteAt(b[:c.n], c.off); !errors.Is(err, qcow2.ErrUnaligned) {
				t.Errorf("WriteAt(%d bytes at %d) = %v, want ErrUnaligned", c.n, c.off, err)
			}
		}
		// The tail may end at the size given or at Size, and the
		// refusals above did not spoil the writer.
		if _, err := w.WriteAt(b[:1000], 1<<20); err != nil {
			t.Fatal(err)
		}
		if _, err := w.WriteAt(b[:4096], 0); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("written-twice", func(t *testing.T) {
		for _, second := range []string{"data", "zeros"} {
			f := newFile()
			w, err := qcow2.NewWriter(f, 1<<20, qcow2.WithClusterSize(4096))
			if err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 4096)
			b[7] = 7
			if _, err := w.WriteAt(b, 8192); err != nil {
				t.Fatal(err)
			}
			if second == "zeros" {
				clear(b)
			}
			w.WriteAt(b, 8192) // reported now or later
			if err := w.Close(); !errors.Is(err, qcow2.ErrClusterWritten) {
				t.Fatalf("%s written over data: Close = %v, want ErrClusterWritten", second, err)
			}
			if _, err := w.WriteAt(b, 0); !errors.Is(err, qcow2.ErrWriterClosed) {
				t.Errorf("WriteAt after Close: %v", err)
			}
			if st, _ := f.Stat(); st.Size() != 0 {
				t.Errorf("failed image left %d bytes", st.Size())
			}
		}
		// A cluster of zeros may be written again, with data.
		w, err := qcow2.NewWriter(newFile(), 1<<20, qcow2.WithClusterSize(4096), qcow2.WithZeroClusters())
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 4096)
		w.WriteAt(b, 0)
		b[1] = 1
		w.WriteAt(b, 0)
		if err := w.Close(); err != nil {
			t.Fatalf("data over zeros: %v", err)
		}
		// WriteFrom must be first.
		w, err = qcow2.NewWriter(newFile(), 1<<20, qcow2.WithClusterSize(4096))
		if err != nil {
			t.Fatal(err)
		}
		defer w.Abort()
		w.WriteAt(b, 0)
		if err := w.WriteFrom(context.Background(), &chunkDisk{size: 1 << 20}, nil); !errors.Is(err, qcow2.ErrClusterWritten) {
			t.Errorf("WriteFrom after WriteAt: %v", err)
		}
	})
	t.Run("source", func(t *testing.T) {
		w, err := qcow2.NewWriter(newFile(), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Abort()
		if err := w.WriteFrom(context.Background(), &chunkDisk{size: 2 << 20}, nil); err == nil {
			t.Error("WriteFrom accepted a source of another size")
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		d := sparseTestDisk(1, 65536, 1<<20)
		w, err = qcow2.NewWriter(newFile(), d.size)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteFrom(ctx, d, nil); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled WriteFrom: %v", err)
		}
		if err := w.Close(); !errors.Is(err, context.Canceled) {
			t.Errorf("Close after a cancelled WriteFrom: %v", err)
		}
		// A source that fails.
		w, err = qcow2.NewWriter(newFile(), d.size)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteFrom(context.Background(), failingDisk{d}, nil); !errors.Is(err, errSource) {
			t.Errorf("failing source: %v", err)
		}
		if err := w.Close(); !errors.Is(err, errSource) {
			t.Errorf("Close after a failed WriteFrom: %v", err)
		}
	})
}

var errSource = errors.New("source broke")

// failingDisk fails reads past its first cluster.
type failingDisk struct{ *chunkDisk }

func (d failingDisk) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > 65536 {
		return 0, errSource
	}
	return d.chunkDisk.ReadAt(p, off)
}

// TestWriterAbort checks that Abort leaves an empty file, that Close then
// fails, and that Abort after a successful Close changes nothing.
func TestWriterAbort(t *testing.T) {
	dir := t.TempDir()
	d := sparseTestDisk(3, 65536, 2<<20)
	f, err := os.Create(filepath.Join(dir, "a.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := qcow2.NewWriter(f, d.size, qcow2.WithCompression(qcow2.CompressionZlib))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range d.chunks[:len(d.chunks)/2] {
		buf := make([]byte, (int64(len(c.data))+65535)&^65535)
		d.ReadAt(buf, c.off)
		if c.off+int64(len(buf)) > d.size {
			buf = buf[:d.size-c.off]
		}
		if _, err := w.WriteAt(buf, c.off); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.Stat(); st.Size() != 0 {
		t.Errorf("aborted image left %d bytes", st.Size())
	}
	if err := w.Close(); !errors.Is(err, qcow2.ErrWriterClosed) {
		t.Errorf("Close after Abort: %v", err)
	}
	if _, err := w.WriteAt(make([]byte, 65536), 0); !errors.Is(err, qcow2.ErrWriterClosed) {
		t.Errorf("WriteAt after Abort: %v", err)
	}

	path := filepath.Join(dir, "b.qcow2")
	w = writeImage(t, path, d, nil, fromDisk, 0) // its deferred Abort ran after Close
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	verifyImage(t, path, d, (d.size+511)&^511)
}

// TestWriterOddSize writes a disk of 70000 bytes, which the image records
// as 70144 (rounded up to 512): with a last write that ends at either
// size, and from sources of either size.
func TestWriterOddSize(t *testing.T) {
	const given, rounded = 70000, 70144
	rng := rand.New(rand.NewPCG(70, 0))
	tail := fill(rng, fillRandom, rounded-65536)
	dir := t.TempDir()
	for _, c := range []struct {
		name    string
		srcSize int64 // the source's size, or 0 to use WriteAt
		n       int   // bytes of the last WriteAt
	}{
		{"WriteAt-given", 0, given - 65536},
		{"WriteAt-rounded", 0, rounded - 65536},
		{"WriteFrom-given", given, 0},
		{"WriteFrom-rounded", rounded, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := &chunkDisk{size: given}
			n := c.n
			if c.srcSize != 0 {
				want.size = c.srcSize
				n = int(c.srcSize - 65536)
			}
			want.add(65536, tail[:n])
			path := filepath.Join(dir, c.name)
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			w, err := qcow2.NewWriter(f, given)
			if err != nil {
				t.Fatal(err)
			}
			if w.Size() != rounded {
				t.Errorf("Size() = %d, want %d", w.Size(), rounded)
			}
			if c.srcSize != 0 {
				err = w.WriteFrom(context.Background(), want, nil)
			} else {
				_, err = w.WriteAt(tail[:n], 65536)
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			checkStructure(t, path)
			want.size = rounded // what the image holds: the source, then zeros
			verifyImage(t, path, want, rounded)
		})
	}
}
