package qcow2_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vmatool/vmatool/qcow2"
)

// openFixture opens a fixture: from memory with Open when it stands alone,
// from files with Open when it needs backing or data files beside it.
func openFixture(t testing.TB, fx fixture) (*qcow2.Image, error) {
	t.Helper()
	if len(fx.Files) == 0 {
		return qcow2.New(bytes.NewReader(fixtureBytes(t, fx.Name)))
	}
	dir := fixtureFiles(t, append([]string{fx.Name}, fx.Files...)...)
	var opts []qcow2.Option
	for _, f := range fx.Files {
		if strings.HasSuffix(f, ".data") {
			opts = append(opts, qcow2.WithDataFile(filepath.Join(dir, f)))
		}
	}
	return qcow2.Open(filepath.Join(dir, fx.Name), opts...)
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestFixtures reads every fixture and compares it with what qemu-img
// made of it: the same bytes, and the same data ranges.
func TestFixtures(t *testing.T) {
	for _, fx := range loadManifest(t) {
		t.Run(fx.Name, func(t *testing.T) {
			img, err := openFixture(t, fx)
			if fx.Error != "" {
				if !errors.Is(err, qcow2.ErrEncrypted) {
					t.Fatalf("Open = %v, want ErrEncrypted", err)
				}
				t.Logf("refused: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			if img.Size() != fx.Size {
				t.Fatalf("Size = %d, want %d", img.Size(), fx.Size)
			}
			// Whole-disk reads, VMA-writer-sized reads (58 clusters of
			// 64 KiB) and reads that cut clusters at odd places.
			var raw []byte
			for _, chunk := range []int{int(fx.Size), 58 << 16, 65536 + 512, 12345} {
				got := readAll(t, img, img.Size(), chunk)
				if s := sha(got); s != fx.SHA256 {
					t.Fatalf("chunk %d: sha256 %s, want %s", chunk, s, fx.SHA256)
				}
				raw = got
			}
			var buf bytes.Buffer
			if n, err := copyImage(&buf, img); err != nil || n != fx.Size {
				t.Fatalf("WriteTo = %d, %v", n, err)
			}
			if s := sha(buf.Bytes()); s != fx.SHA256 {
				t.Fatalf("WriteTo: sha256 %s, want %s", s, fx.SHA256)
			}
			checkMaps(t, img, fx, raw)
		})
	}
}

// dataRanges collects NextData's ranges over the whole disk, merged.
func dataRanges(t testing.TB, img *qcow2.Image) [][2]int64 {
	t.Helper()
	var out [][2]int64
	for off := int64(0); off < img.Size(); {
		s, e, err := img.NextData(off)
		if err != nil {
			t.Fatalf("NextData(%d): %v", off, err)
		}
		if s < off || e < s || e > img.Size() || (s == e && s != img.Size()) {
			t.Fatalf("NextData(%d) = [%d, %d): out of order (size %d)", off, s, e, img.Size())
		}
		if s == e {
			break
		}
		if n := len(out); n > 0 && out[n-1][0]+out[n-1][1] == s {
			out[n-1][1] += e - s
		} else {
			out = append(out, [2]int64{s, e - s})
		}
		off = e
	}
	return out
}

// checkMaps checks NextData and Extents against qemu-img map and against
// the bytes read.
func checkMaps(t *testing.T, img *qcow2.Image, fx fixture, raw []byte) {
	got := dataRanges(t, img)
	want := fx.Data
	if want == nil {
		want = [][2]int64{}
	}
	if got == nil {
		got = [][2]int64{}
	}
	if !slices.Equal(got, want) {
		t.Errorf("NextData ranges %v\nqemu-img map data %v", got, want)
	}
	// Outside the data ranges every byte must read as zero.
	prev := int64(0)
	for _, r := range append(got, [2]int64{img.Size(), 0}) {
		if !isZero(raw[prev:r[0]]) {
			t.Errorf("NextData skips [%d, %d), which holds data", prev, r[0])
		}
		prev = r[0] + r[1]
	}
	ext, err := img.Extents(0, img.Size())
	if err != nil {
		t.Fatal(err)
	}
	var pos int64
	for i, e := range ext {
		if e.Start != pos || e.Length <= 0 || (i > 0 && ext[i-1].State == e.State) {
			t.Fatalf("extent %d %+v does not follow %d or is not merged", i, e, pos)
		}
		if e.State == qcow2.Zero && !isZero(raw[e.Start:e.Start+e.Length]) {
			t.Errorf("zero extent %+v reads non-zero bytes", e)
		}
		if e.State == qcow2.Unallocated && len(img.Backing()) == 0 && !isZero(raw[e.Start:e.Start+e.Length]) {
			t.Errorf("unallocated extent %+v reads non-zero bytes without a backing file", e)
		}
		pos += e.Length
	}
	if pos != img.Size() {
		t.Fatalf("extents cover %d bytes, want %d", pos, img.Size())
	}
}

// TestFixtureProperties checks what each kind of fixture exposes besides
// its bytes.
func TestFixtureProperties(t *testing.T) {
	fxs := map[string]fixture{}
	for _, fx := range loadManifest(t) {
		fxs[fx.Name] = fx
	}
	tests := []struct {
		name        string
		version     int
		cluster     int64
		compression qcow2.Compression
		extL2       bool
		dirty       bool
		backing     []string // formats, nearest first
	}{
		{"v3-64k.qcow2", 3, 65536, qcow2.CompressionZlib, false, false, nil},
		{"v2-4k.qcow2", 2, 4096, qcow2.CompressionZlib, false, false, nil},
		{"c512.qcow2", 3, 512, qcow2.CompressionZlib, false, false, nil},
		{"c2m.qcow2", 3, 2 << 20, qcow2.CompressionZlib, false, false, nil},
		{"zstd-64k.qcow2", 3, 65536, qcow2.CompressionZstd, false, false, nil},
		{"extl2-zstd.qcow2", 3, 65536, qcow2.CompressionZstd, true, false, nil},
		{"lazy-dirty.qcow2", 3, 65536, qcow2.CompressionZlib, false, true, nil},
		{"chain-ov2.qcow2", 3, 65536, qcow2.CompressionZlib, false, false, []string{"qcow2", "qcow2"}},
		{"chain-raw.qcow2", 3, 65536, qcow2.CompressionZlib, false, false, []string{"raw"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, err := openFixture(t, fxs[tt.name])
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			if img.Version() != tt.version || img.ClusterSize() != tt.cluster || img.Compression() != tt.compression ||
				img.ExtendedL2() != tt.extL2 || img.Dirty() != tt.dirty {
				t.Errorf("got version %d, cluster %d, %v, extL2 %v, dirty %v", img.Version(), img.ClusterSize(),
					img.Compression(), img.ExtendedL2(), img.Dirty())
			}
			var formats []string
			for _, b := range img.Backing() {
				formats = append(formats, b.Format)
			}
			if !slices.Equal(formats, tt.backing) {
				t.Errorf("backing formats %v, want %v (%+v)", formats, tt.backing, img.Backing())
			}
		})
	}
}

// TestExtentStates checks the states of ranges the make.sh commands set up.
func TestExtentStates(t *testing.T) {
	fxs := map[string]fixture{}
	for _, fx := range loadManifest(t) {
		fxs[fx.Name] = fx
	}
	const k, m = 1 << 10, 1 << 20
	tests := []struct {
		image string
		off   int64
		n     int64
		want  qcow2.State
	}{
		{"zero-v3.qcow2", 0, 64 * k, qcow2.Zero},             // write -z: ZERO_ALLOC
		{"zero-v3.qcow2", 1 * m, 128 * k, qcow2.Zero},        // write -z -u: ZERO_PLAIN
		{"zero-v3.qcow2", 64 * k, 64 * k, qcow2.Unallocated}, // a hole
		{"v3-64k.qcow2", 0, 64 * k, qcow2.Data},
		{"zlib-64k.qcow2", 1 * m, 256 * k, qcow2.Compressed},
		{"mixed-rw.qcow2", 0, 64 * k, qcow2.Zero},
		{"mixed-rw.qcow2", 1 * m, 64 * k, qcow2.Zero},
		{"mixed-rw.qcow2", 1*m + 64*k, 64 * k, qcow2.Data}, // a write over a compressed cluster
		{"mixed-rw.qcow2", 1*m + 128*k, 128 * k, qcow2.Compressed},
		{"extl2-64k.qcow2", 1*m + 8*k, 4 * k, qcow2.Zero},         // two zero subclusters
		{"extl2-64k.qcow2", 2*m + 4*k, 2 * k, qcow2.Data},         // one allocated subcluster
		{"extl2-64k.qcow2", 2*m + 6*k, 58 * k, qcow2.Unallocated}, // the rest of its cluster
		{"chain-ov1.qcow2", 1*m + 64*k, 64 * k, qcow2.Zero},       // hides the base's text
		{"chain-ov1.qcow2", 1 * m, 64 * k, qcow2.Data},
		{"chain-ov1.qcow2", 0, 64 * k, qcow2.Unallocated},
		{"prealloc-meta.qcow2", 0, 4 * m, qcow2.Data},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s@%d", tt.image, tt.off), func(t *testing.T) {
			img, err := openFixture(t, fxs[tt.image])
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			ext, err := img.Extents(tt.off, tt.n)
			if err != nil {
				t.Fatal(err)
			}
			want := []qcow2.Extent{{Start: tt.off, Length: tt.n, State: tt.want}}
			if !slices.Equal(ext, want) {
				t.Errorf("Extents(%d, %d) = %+v, want %+v", tt.off, tt.n, ext, want)
			}
		})
	}
}

// TestNextDataChain checks that holes of a backing chain are skipped only
// where no layer has data, and that zero clusters hide backing data.
func TestNextDataChain(t *testing.T) {
	fxs := map[string]fixture{}
	for _, fx := range loadManifest(t) {
		fxs[fx.Name] = fx
	}
	img, err := openFixture(t, fxs["chain-ov1.qcow2"])
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	const k, m = 1 << 10, 1 << 20
	// The base has text at [1M, 1M+256K); the overlay writes [1M, 1M+64K)
	// and zeroes [1M+64K, 1M+128K).
	for _, tt := range []struct{ off, start, end int64 }{
		{64 * k, 1 * m, 1*m + 64*k},
		{1*m + 64*k, 1*m + 128*k, 1*m + 256*k},
		{4*m - 4*k, 4*m - 4*k, 4 * m},
		{4 * m, 4 * m, 4 * m},
		{5 * m, 4 * m, 4 * m},
	} {
		s, e, err := img.NextData(tt.off)
		if err != nil || s != tt.start || e != tt.end {
			t.Errorf("NextData(%d) = %d, %d, %v; want %d, %d", tt.off, s, e, err, tt.start, tt.end)
		}
	}
}

// TestConcurrentReads reads compressed images from several goroutines at
// once (run with -race) and compares with a sequential read.
func TestConcurrentReads(t *testing.T) {
	for _, name := range []string{"zlib-2m.qcow2", "zstd-64k.qcow2", "zlib-512.qcow2", "chain-ov2.qcow2"} {
		t.Run(name, func(t *testing.T) {
			var fx fixture
			for _, f := range loadManifest(t) {
				if f.Name == name {
					fx = f
				}
			}
			img, err := openFixture(t, fx)
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			want := readAll(t, img, img.Size(), int(img.Size()))
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for g := range 4 {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(g), 7))
					buf := make([]byte, 3<<20)
					for range 20 {
						off := rng.Int64N(img.Size())
						n := rng.IntN(len(buf)) + 1
						got, err := img.ReadAt(buf[:n], off)
						if err != nil && err != io.EOF {
							errs <- err
							return
						}
						if !bytes.Equal(buf[:got], want[off:off+int64(got)]) {
							errs <- fmt.Errorf("ReadAt(%d, %d): wrong bytes", n, off)
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
		})
	}
}

// TestReadAtEdges checks the io.ReaderAt contract at the ends of the disk.
func TestReadAtEdges(t *testing.T) {
	img, err := qcow2.New(bytes.NewReader(fixtureBytes(t, "odd-zlib-2m.qcow2")))
	if err != nil {
		t.Fatal(err)
	}
	size := img.Size()
	buf := make([]byte, 8192)
	if n, err := img.ReadAt(buf, size-100); n != 100 || err != io.EOF {
		t.Errorf("ReadAt across the end = %d, %v; want 100, EOF", n, err)
	}
	if n, err := img.ReadAt(buf, size); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at the end = %d, %v; want 0, EOF", n, err)
	}
	if n, err := img.ReadAt(buf[:0], 0); n != 0 || err != nil {
		t.Errorf("empty ReadAt = %d, %v", n, err)
	}
	if _, err := img.ReadAt(buf, -1); err == nil {
		t.Error("ReadAt at -1 succeeded")
	}
	if s, e, err := img.NextData(size + 1); s != size || e != size || err != nil {
		t.Errorf("NextData past the end = %d, %d, %v", s, e, err)
	}
	if err := img.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := img.ReadAt(buf, 0); !errors.Is(err, qcow2.ErrClosed) {
		t.Errorf("ReadAt after Close = %v, want ErrClosed", err)
	}
}

// TestExtentJSON checks that states marshal as names and read back.
func TestExtentJSON(t *testing.T) {
	in := []qcow2.Extent{
		{Start: 0, Length: 512, State: qcow2.Data},
		{Start: 512, Length: 512, State: qcow2.Compressed},
		{Start: 1024, Length: 512, State: qcow2.Zero},
		{Start: 1536, Length: 512, State: qcow2.Unallocated},
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	const want = `[{"start":0,"length":512,"state":"data"},{"start":512,"length":512,"state":"compressed"},` +
		`{"start":1024,"length":512,"state":"zero"},{"start":1536,"length":512,"state":"unallocated"}]`
	if string(b) != want {
		t.Errorf("got %s", b)
	}
	var out []qcow2.Extent
	if err := json.Unmarshal(b, &out); err != nil || !slices.Equal(in, out) {
		t.Errorf("round trip: %v, %v", out, err)
	}
}
