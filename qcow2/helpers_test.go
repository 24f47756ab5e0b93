package qcow2_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/vmatool/vmatool/qcow2"
)

const fixtureDir = "../testdata/qcow2"

// fixture is one entry of testdata/qcow2/manifest.json, which make.sh
// writes from qemu-img's own view of each image.
type fixture struct {
	Name   string     `json:"name"`
	Size   int64      `json:"size"`
	SHA256 string     `json:"sha256"` // of "qemu-img convert -O raw"
	Files  []string   `json:"files"`  // backing and data files it needs beside it
	Data   [][2]int64 `json:"data"`   // ranges "qemu-img map" reports as data
	Error  string     `json:"error"`  // "encrypted" when it must be refused
}

var (
	manifestOnce sync.Once
	manifest     []fixture
	manifestErr  error
)

func loadManifest(t testing.TB) []fixture {
	t.Helper()
	manifestOnce.Do(func() {
		b, err := os.ReadFile(filepath.Join(fixtureDir, "manifest.json"))
		if err != nil {
			manifestErr = err
			return
		}
		manifestErr = json.Unmarshal(b, &manifest)
	})
	if manifestErr != nil {
		t.Fatal(manifestErr)
	}
	return manifest
}

// fixtureBytes returns the decompressed fixture name (without ".gz").
func fixtureBytes(t testing.TB, name string) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join(fixtureDir, name+".gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixtureFiles decompresses fixtures into a new directory and returns it,
// so that images find their backing files by relative name.
func fixtureFiles(t testing.TB, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), fixtureBytes(t, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// requireTool returns the path of an external tool, or skips the test when
// it is missing, unless VMATOOL_REQUIRE_TOOLS=1 makes that a failure (CI
// sets it where the tools are installed, so the tests cannot silently
// stop running).
func requireTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("VMATOOL_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s not found and VMATOOL_REQUIRE_TOOLS=1: install it (Debian: apt-get install qemu-utils)", name)
	}
	t.Skipf("%s not found: skipping (install qemu-utils, or set VMATOOL_REQUIRE_TOOLS=1 to make this a failure)", name)
	return ""
}

// readAll reads the whole virtual disk with ReadAt calls of chunk bytes.
func readAll(t testing.TB, r io.ReaderAt, size int64, chunk int) []byte {
	t.Helper()
	out := make([]byte, size)
	for off := int64(0); off < size; off += int64(chunk) {
		p := out[off:min(off+int64(chunk), size)]
		n, err := r.ReadAt(p, off)
		if n != len(p) || (err != nil && err != io.EOF) {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, %v", len(p), off, n, err)
		}
	}
	return out
}

// copyImage writes the whole virtual disk to w in 4 MiB reads, each of
// which decompresses its clusters on the image's workers.
func copyImage(w io.Writer, img *qcow2.Image) (int64, error) {
	buf := make([]byte, 4<<20)
	var written int64
	for off := int64(0); off < img.Size(); {
		n, err := img.ReadAt(buf[:min(int64(len(buf)), img.Size()-off)], off)
		if err != nil && err != io.EOF {
			return written, err
		}
		m, err := w.Write(buf[:n])
		written += int64(m)
		if err != nil {
			return written, err
		}
		off += int64(n)
	}
	return written, nil
}

// isZero reports whether b holds only zeros.
func isZero(b []byte) bool {
	var zero [4096]byte
	for len(b) > 0 {
		n := min(len(b), len(zero))
		if !bytes.Equal(b[:n], zero[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// bytesReader is bytes.NewReader, as an io.ReaderAt.
func bytesReader(b []byte) io.ReaderAt { return bytes.NewReader(b) }

// sparseDisk is vma.SparseDisk, restated so that qcow2 and its tests do
// not import vma: *qcow2.Image must satisfy it.
type sparseDisk interface {
	io.ReaderAt
	Size() int64
	NextData(off int64) (start, end int64, err error)
}

var _ sparseDisk = (*qcow2.Image)(nil)
