package qcow2_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/vmatool/vmatool/qcow2"
)

// TestChainMemory opens a chain of the deepest kind (16 backing files) of
// images that each claim a 32 MiB L1 table and a 2 PiB disk, and walks it
// end to end. Holding each L1 table took over 500 MiB; the chain must cost
// a few MiB, allocated once.
func TestChainMemory(t *testing.T) {
	top := hugeChain(t, t.TempDir(), 16, qcow2.DefaultMaxBackingDepth)
	var before, opened, walked runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	img, err := qcow2.Open(top)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	runtime.ReadMemStats(&opened)
	if n := len(img.Backing()); n != qcow2.DefaultMaxBackingDepth {
		t.Fatalf("chain of %d backing files, want %d", n, qcow2.DefaultMaxBackingDepth)
	}
	// NextData looks at every L1 entry of every image (in bounded calls),
	// and reads a cluster where its search budget runs out.
	buf := make([]byte, 64<<10)
	for off := int64(0); off < img.Size(); {
		s, e, err := img.NextData(off)
		if err != nil {
			t.Fatal(err)
		}
		if s < e {
			if _, err := img.ReadAt(buf[:min(e-s, int64(len(buf)))], s); err != nil {
				t.Fatal(err)
			}
		}
		off = max(e, off+1)
	}
	exts, err := img.Extents(0, img.Size())
	if err != nil || len(exts) != 1 {
		t.Fatalf("Extents = %v, %v", exts, err)
	}
	runtime.GC()
	runtime.ReadMemStats(&walked)
	runtime.KeepAlive(img)
	if n := opened.TotalAlloc - before.TotalAlloc; n > 4<<20 {
		t.Errorf("Open allocated %.1f MiB", float64(n)/(1<<20))
	}
	if n := walked.TotalAlloc - before.TotalAlloc; n > 8<<20 {
		t.Errorf("opening and walking the chain allocated %.1f MiB", float64(n)/(1<<20))
	}
	if n := int64(walked.HeapAlloc) - int64(before.HeapAlloc); n > 4<<20 {
		t.Errorf("the open chain holds %.1f MiB", float64(n)/(1<<20))
	}
}

// TestBackingModes checks SkipBacking and RefuseBacking, and that an image
// without a backing file opens either way.
func TestBackingModes(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.raw")
	if err := os.WriteFile(base, []byte(strings.Repeat("base", 1<<18)), 0o644); err != nil {
		t.Fatal(err)
	}
	c := crafted{clusterBits: 16, size: 1 << 20, l1Size: 1, backing: "base.raw", backingFormat: "raw"}
	top := c.write(t, filepath.Join(dir, "top.qcow2"))
	alone := crafted{clusterBits: 16, size: 1 << 20, l1Size: 1}.write(t, filepath.Join(dir, "alone.qcow2"))

	img, err := qcow2.Open(top, qcow2.WithBacking(qcow2.SkipBacking))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.BackingFileName() != "base.raw" || img.BackingFormat() != "raw" || img.Backing() != nil {
		t.Errorf("skipped: name %q, format %q, chain %v", img.BackingFileName(), img.BackingFormat(), img.Backing())
	}
	_, err = img.ReadAt(make([]byte, 4096), 8192)
	var bErr *qcow2.BackingError
	if !errors.Is(err, qcow2.ErrBackingSkipped) || !errors.As(err, &bErr) || bErr.Image != top || !strings.Contains(err.Error(), "0x2000") {
		t.Errorf("reading what the skipped backing file holds = %v", err)
	}
	if s, e, err := img.NextData(0); err != nil || s != 0 || e != 1<<20 {
		t.Errorf("NextData = %d, %d, %v; want all of it, as the backing file may hold data", s, e, err)
	}
	if exts, err := img.Extents(0, 1<<20); err != nil || len(exts) != 1 || exts[0].State != qcow2.Unallocated {
		t.Errorf("Extents = %v, %v", exts, err)
	}

	_, err = qcow2.Open(top, qcow2.WithBacking(qcow2.RefuseBacking))
	if !errors.Is(err, qcow2.ErrBackingRefused) || !errors.As(err, &bErr) || bErr.Image != top || bErr.Name != "base.raw" || bErr.Path != "" {
		t.Errorf("RefuseBacking = %v", err)
	}
	if !strings.Contains(fmt.Sprint(err), "backing_file_offset") {
		t.Errorf("%v does not say where the name is", err)
	}

	for _, mode := range []qcow2.BackingMode{qcow2.FollowBacking, qcow2.SkipBacking, qcow2.RefuseBacking} {
		img, err := qcow2.Open(alone, qcow2.WithBacking(mode))
		if err != nil {
			t.Fatalf("mode %d: %v", mode, err)
		}
		if _, err := img.ReadAt(make([]byte, 4096), 0); err != nil || img.BackingFileName() != "" {
			t.Errorf("mode %d: ReadAt = %v, backing %q", mode, err, img.BackingFileName())
		}
		img.Close()
	}

	img, err = qcow2.Open(top)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	got := make([]byte, 8)
	if _, err := img.ReadAt(got, 4); err != nil || string(got) != "basebase" {
		t.Errorf("followed: ReadAt = %q, %v", got, err)
	}
}

// TestBackingErrorNames checks whose name a *BackingError carries: the
// image whose header names the file, also further down the chain, and
// the backing image's own *FormatError with one "qcow2:" prefix.
func TestBackingErrorNames(t *testing.T) {
	dir := t.TempDir()
	top := crafted{clusterBits: 16, size: 1 << 20, l1Size: 1, backing: "mid.qcow2", backingFormat: "qcow2"}.write(t, filepath.Join(dir, "top.qcow2"))
	mid := crafted{clusterBits: 16, size: 1 << 20, l1Size: 1, backing: "gone.raw", backingFormat: "raw"}.write(t, filepath.Join(dir, "mid.qcow2"))
	_, err := qcow2.Open(top)
	var bErr *qcow2.BackingError
	if !errors.Is(err, qcow2.ErrBackingFile) || !errors.Is(err, os.ErrNotExist) || !errors.As(err, &bErr) || bErr.Image != mid || bErr.Name != "gone.raw" {
		t.Errorf("missing file under mid = %v", err)
	}

	// mid claims a version qcow2 does not know.
	b, err := os.ReadFile(mid)
	if err != nil {
		t.Fatal(err)
	}
	be.PutUint32(b[hVersion:], 9)
	if err := os.WriteFile(mid, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = qcow2.Open(top)
	var fe *qcow2.FormatError
	if !errors.As(err, &bErr) || bErr.Image != top || bErr.Path != mid || !errors.As(err, &fe) || fe.Offset != hVersion {
		t.Fatalf("bad version in mid = %v", err)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "qcow2: "+top) || strings.Contains(msg, "): qcow2: ") || !strings.Contains(msg, "opened as "+mid+"): at offset 4 ") || !strings.Contains(msg, "version 9") {
		t.Errorf("message %q", msg)
	}

	// Too deep: the image at the limit is named.
	deep := hugeChain(t, t.TempDir(), 9, 3)
	_, err = qcow2.Open(deep, qcow2.WithMaxBackingDepth(2))
	if !errors.Is(err, qcow2.ErrBackingDepth) || !errors.As(err, &bErr) || filepath.Base(bErr.Image) != "c02.qcow2" || bErr.Name != "c03.qcow2" {
		t.Errorf("too deep = %v", err)
	}
}

// TestWalkExtents checks that WalkExtents gives what Extents gives, one
// extent at a time, and stops at the callback's error.
func TestWalkExtents(t *testing.T) {
	for _, name := range []string{"zero-v3.qcow2", "zlib-64k.qcow2", "extl2-64k.qcow2"} {
		img, err := qcow2.New(bytesReader(fixtureBytes(t, name)))
		if err != nil {
			t.Fatal(err)
		}
		want, err := img.Extents(1000, img.Size())
		if err != nil || len(want) < 3 {
			t.Fatalf("%s: Extents = %d extents, %v", name, len(want), err)
		}
		var got []qcow2.Extent
		if err := img.WalkExtents(1000, img.Size(), func(e qcow2.Extent) error {
			got = append(got, e)
			return nil
		}); err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: WalkExtents = %v, %v; want %v", name, got, err, want)
		}
		stop := errors.New("stop")
		calls := 0
		err = img.WalkExtents(0, img.Size(), func(qcow2.Extent) error {
			calls++
			return stop
		})
		if err != stop || calls != 1 {
			t.Errorf("%s: WalkExtents after an error = %v, %d calls", name, err, calls)
		}
		img.Close()
	}
}
