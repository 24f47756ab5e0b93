package qcow2_test

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/vmatool/vmatool/qcow2"
)

// TestL1Pages reads an image whose L1 table spans several of the pages the
// reader loads at a time (512 entries), with writes on and across page
// boundaries, forwards, backwards and from concurrent readers, against
// qemu-img convert.
func TestL1Pages(t *testing.T) {
	qemuImg := requireTool(t, "qemu-img")
	qemuIO := requireTool(t, "qemu-io")
	dir := t.TempDir()
	name := "pages.qcow2"
	path := filepath.Join(dir, name)
	// With 512-byte clusters an L1 entry maps 32 KiB and a page 16 MiB:
	// 48 MiB is three pages.
	const size, page = 48 << 20, 16 << 20
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	run(qemuImg, "create", "-q", "-f", "qcow2", "-o", "cluster_size=512", path, "48M")
	run(qemuIO, "-f", "qcow2",
		"-c", "write -P 0x11 0 64k",
		"-c", "write -P 0x22 16769024 16k", // 8 KiB each side of the first page boundary
		"-c", "write -P 0x33 33558528 4k", // just past the second
		"-c", "write -P 0x44 50330624 512", // the last sector
		path)
	ref := filepath.Join(dir, "ref.raw")
	run(qemuImg, "convert", "-O", "raw", path, ref)
	want, err := os.ReadFile(ref)
	if err != nil || len(want) != size {
		t.Fatalf("reference: %d bytes, %v", len(want), err)
	}

	// The smallest cache, so that L2 tables come and go too.
	img, err := qcow2.Open(path, qcow2.WithCacheSize(1))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if got := readAll(t, img, size, 3<<20); !bytes.Equal(got, want) {
		t.Fatal("forward read differs from qemu-img convert")
	}
	got := make([]byte, size)
	const chunk = 1 << 20
	for off := int64(size - chunk); off >= 0; off -= chunk + page/2 {
		if _, err := img.ReadAt(got[off:off+chunk], off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[off:off+chunk], want[off:off+chunk]) {
			t.Fatalf("backward read at %d differs", off)
		}
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			buf := make([]byte, 64<<10)
			for range 200 {
				off := rng.Int64N(size - int64(len(buf)))
				if _, err := img.ReadAt(buf, off); err != nil {
					t.Error(err)
					return
				}
				if !bytes.Equal(buf, want[off:off+int64(len(buf))]) {
					t.Errorf("concurrent read at %d differs", off)
					return
				}
			}
		})
	}
	wg.Wait()
	checkCoversQemuMap(t, dir, name, img)
}

// BenchmarkL1Lookups walks the map of a 128 GiB image of 512-byte
// clusters and a full L1 table: 4 Mi L1 lookups and nothing else, the
// worst case for the L1 pages.
func BenchmarkL1Lookups(b *testing.B) {
	path := huge(9, "").write(b, filepath.Join(b.TempDir(), "huge.qcow2"))
	img, err := qcow2.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer img.Close()
	b.ReportAllocs()
	for b.Loop() {
		exts, err := img.Extents(0, img.Size())
		if err != nil || len(exts) != 1 {
			b.Fatal(exts, err)
		}
	}
}
