package raw

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const mib = 1 << 20

// span is a written byte range of a test file.
type span struct{ off, n int64 }

// makeFile creates a file of the given size in a temp dir with non-zero
// bytes at each span and holes elsewhere.
func makeFile(t testing.TB, size int64, spans ...span) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.raw")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	markSparse(t, f)
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for i, s := range spans {
		if _, err := f.WriteAt(pattern(s.n, byte(i)), s.off); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// pattern returns n bytes that are never zero.
func pattern(n int64, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)%251 + 1 + seed
		if b[i] == 0 {
			b[i] = 1
		}
	}
	return b
}

func openT(t testing.TB, path string) *Disk {
	t.Helper()
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// ranges walks NextData from 0 and checks the contract on the way: ranges
// ascend, stay in bounds, are non-empty, and gaps between them read as
// zeros.
func ranges(t *testing.T, d *Disk) []span {
	t.Helper()
	var out []span
	size := d.Size()
	for off := int64(0); ; {
		start, end, err := d.NextData(off)
		if err != nil {
			t.Fatalf("NextData(%d): %v", off, err)
		}
		if start < off || end < start || end > size {
			t.Fatalf("NextData(%d) = [%d, %d), size %d", off, start, end, size)
		}
		checkZeros(t, d, off, start)
		if start == end {
			if start != size {
				t.Fatalf("NextData(%d) = empty range at %d before the end %d", off, start, size)
			}
			return out
		}
		out = append(out, span{start, end - start})
		off = end
	}
}

func checkZeros(t *testing.T, d *Disk, from, to int64) {
	t.Helper()
	buf := make([]byte, 64<<10)
	for off := from; off < to; {
		n := min(int64(len(buf)), to-off)
		if _, err := d.ReadAt(buf[:n], off); err != nil {
			t.Fatalf("ReadAt(%d, %d): %v", off, n, err)
		}
		if i := bytes.IndexFunc(buf[:n], func(r rune) bool { return r != 0 }); i >= 0 {
			t.Fatalf("byte at %d is non-zero but NextData skipped it", off+int64(i))
		}
		off += n
	}
}

// covered reports whether [s.off, s.off+s.n) lies inside the union of rs.
func covered(rs []span, s span) bool {
	for off := s.off; off < s.off+s.n; {
		found := false
		for _, r := range rs {
			if off >= r.off && off < r.off+r.n {
				off = r.off + r.n
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func overlaps(rs []span, s span) bool {
	for _, r := range rs {
		if r.off < s.off+s.n && s.off < r.off+r.n {
			return true
		}
	}
	return false
}

func TestNextData(t *testing.T) {
	holes := holesSupported(t, t.TempDir())
	if !holes {
		t.Logf("filesystem of %s does not report holes; only the conservative contract is checked", os.TempDir())
	}
	tests := []struct {
		name    string
		size    int64
		written []span
		// hole must not be reported as data where holes are supported.
		// Its edges keep 1 MiB from written data, slack for filesystems
		// that allocate in large units.
		hole span
	}{
		{
			name:    "sparse",
			size:    32 * mib,
			written: []span{{0, 100}, {1*mib + 123, 5000}, {12 * mib, 64 << 10}, {30*mib + 7, 1}},
			hole:    span{2 * mib, 8 * mib},
		},
		{
			name: "all hole",
			size: 16 * mib,
			hole: span{0, 16 * mib},
		},
		{
			name:    "data at end",
			size:    16 * mib,
			written: []span{{16*mib - 4096, 4096}},
			hole:    span{0, 8 * mib},
		},
		{
			name:    "last byte",
			size:    16*mib + 1000, // not a multiple of 512
			written: []span{{16*mib + 999, 1}},
			hole:    span{0, 8 * mib},
		},
		{
			name:    "dense",
			size:    3 * mib,
			written: []span{{0, 3 * mib}},
		},
		{
			name: "empty",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := openT(t, makeFile(t, tt.size, tt.written...))
			if d.Size() != tt.size {
				t.Fatalf("Size() = %d, want %d", d.Size(), tt.size)
			}
			rs := ranges(t, d)
			for _, w := range tt.written {
				if !covered(rs, w) {
					t.Errorf("written bytes [%d, %d) not inside data ranges %v", w.off, w.off+w.n, rs)
				}
			}
			var sum int64
			for _, r := range rs {
				sum += r.n
			}
			alloc, err := d.Allocated()
			if err != nil {
				t.Fatal(err)
			}
			if alloc != sum {
				t.Errorf("Allocated() = %d, data ranges sum to %d", alloc, sum)
			}
			if !holes {
				if len(rs) > 1 || alloc != tt.size {
					t.Errorf("without hole support want one range to the end, got %v", rs)
				}
				return
			}
			if tt.hole.n > 0 && overlaps(rs, tt.hole) {
				t.Errorf("hole [%d, %d) reported as data: %v", tt.hole.off, tt.hole.off+tt.hole.n, rs)
			}
			if len(tt.written) == 0 && len(rs) != 0 {
				t.Errorf("file without data reports ranges %v", rs)
			}
		})
	}
}

func TestNextDataOffsets(t *testing.T) {
	d := openT(t, makeFile(t, 4*mib, span{1 * mib, 1 * mib}))
	// Inside data, the range starts right at the offset.
	start, end, err := d.NextData(1*mib + 5)
	if err != nil || start != 1*mib+5 || end < 2*mib {
		t.Errorf("NextData(1 MiB + 5) = %d, %d, %v; want start at the offset, end >= 2 MiB", start, end, err)
	}
	for _, off := range []int64{4 * mib, 4*mib + 1, 1 << 40} {
		start, end, err := d.NextData(off)
		if err != nil || start != 4*mib || end != 4*mib {
			t.Errorf("NextData(%d) = %d, %d, %v; want Size(), Size(), nil", off, start, end, err)
		}
	}
	if _, _, err := d.NextData(-1); err == nil {
		t.Error("NextData(-1) succeeded")
	}
}

func TestEmpty(t *testing.T) {
	d := openT(t, makeFile(t, 0))
	if n, err := d.ReadAt(make([]byte, 1), 0); n != 0 || err != io.EOF {
		t.Errorf("ReadAt on empty disk = %d, %v; want 0, io.EOF", n, err)
	}
	if start, end, err := d.NextData(0); start != 0 || end != 0 || err != nil {
		t.Errorf("NextData(0) = %d, %d, %v; want 0, 0, nil", start, end, err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(filepath.Join(dir, "missing.raw"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing) error = %v, want fs.ErrNotExist", err)
	}
	_, err = Open(dir)
	if !errors.Is(err, ErrNotDisk) || !strings.Contains(err.Error(), "directory") {
		t.Errorf("Open(dir) error = %v, want ErrNotDisk naming a directory", err)
	}
	t.Logf("directory: %v", err)

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if _, err := New(r); !errors.Is(err, ErrNotDisk) {
		t.Errorf("New(pipe) error = %v, want ErrNotDisk", err)
	}
}

func TestNew(t *testing.T) {
	path := makeFile(t, 1*mib, span{0, 10})
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(f)
	if err != nil {
		t.Fatal(err)
	}
	if d.name != path || d.Size() != 1*mib {
		t.Errorf("name, Size = %q, %d; want %q, %d", d.name, d.Size(), path, 1*mib)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Stat(); err == nil {
		t.Error("Close did not close the file")
	}
}

// TestConcurrent runs NextData and ReadAt from many goroutines; with -race
// it proves no shared state is written, and the answers must match a
// serial walk because lseek's file offset is never relied on.
func TestConcurrent(t *testing.T) {
	var spans []span
	for i := int64(0); i < 32; i++ {
		spans = append(spans, span{i*mib + i*4096, 8192})
	}
	d := openT(t, makeFile(t, 33*mib, spans...))
	type answer struct{ start, end int64 }
	want := map[int64]answer{}
	offsets := make([]int64, 256)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range offsets {
		offsets[i] = rng.Int64N(d.Size())
		s, e, err := d.NextData(offsets[i])
		if err != nil {
			t.Fatal(err)
		}
		want[offsets[i]] = answer{s, e}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			buf := make([]byte, 4096)
			for i := range 500 {
				off := offsets[(g*31+i)%len(offsets)]
				s, e, err := d.NextData(off)
				if err != nil {
					errs <- err
					return
				}
				if got := (answer{s, e}); got != want[off] {
					t.Errorf("concurrent NextData(%d) = %v, serial %v", off, got, want[off])
					return
				}
				if _, err := d.ReadAt(buf, off&^4095); err != nil && err != io.EOF {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestBlockDevice opens the block device named by VMATOOL_TEST_BLOCKDEV
// (read-only; nothing is written), since test machines rarely let a test
// make one.
func TestBlockDevice(t *testing.T) {
	path := os.Getenv("VMATOOL_TEST_BLOCKDEV")
	if path == "" {
		t.Skip("set VMATOOL_TEST_BLOCKDEV to a readable block device to test one")
	}
	d := openT(t, path)
	if d.Size() <= 0 {
		t.Fatalf("Size() = %d", d.Size())
	}
	start, end, err := d.NextData(0)
	if err != nil || start != 0 || end != d.Size() {
		t.Errorf("NextData(0) = %d, %d, %v; want the whole device", start, end, err)
	}
	if _, err := d.ReadAt(make([]byte, 512), d.Size()-512); err != nil {
		t.Errorf("reading the last sector: %v", err)
	}
}

// TestEmptyBlockDevice opens a loop device with nothing attached, which
// reports size 0 as macOS reports every block device: it must be refused,
// not read as an empty disk.
func TestEmptyBlockDevice(t *testing.T) {
	paths, _ := filepath.Glob("/dev/loop[0-9]*")
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode()&fs.ModeDevice == 0 || fi.Mode()&fs.ModeCharDevice != 0 {
			continue
		}
		d, err := Open(p)
		switch {
		case err == nil && d.Size() > 0:
			d.Close() // attached: try the next one
			continue
		case err == nil:
			d.Close()
			t.Fatalf("Open(%s) took a block device of size 0 as an empty disk", p)
		case errors.Is(err, fs.ErrPermission):
			continue
		case !strings.Contains(err.Error(), "block device reports size 0"):
			t.Fatalf("Open(%s) error = %v, want one saying the size is 0", p, err)
		}
		t.Logf("%v", err)
		return
	}
	t.Skip("no readable loop device without a file attached")
}

// BenchmarkReadAt reads a dense file sequentially in 3.7 MiB chunks, the
// size of a full VMA extent (59 clusters of 64 KiB).
func BenchmarkReadAt(b *testing.B) {
	const (
		chunk = 59 * 64 << 10
		size  = 64 * mib
	)
	d := openT(b, makeFile(b, size, span{0, size}))
	buf := make([]byte, chunk)
	b.SetBytes(chunk)
	b.ReportAllocs()
	var off int64
	for b.Loop() {
		if off+chunk > size {
			off = 0
		}
		if _, err := d.ReadAt(buf, off); err != nil {
			b.Fatal(err)
		}
		off += chunk
	}
}
