//go:build linux || darwin

package raw

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// holesSupported reports whether dir's filesystem reports an 8 MiB hole
// through SEEK_DATA. It asks the kernel directly, not the code under test,
// so a broken NextData cannot talk its own assertions away.
func holesSupported(t testing.TB, dir string) bool {
	t.Helper()
	path := filepath.Join(dir, "probe")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	defer os.Remove(path)
	if _, err := f.WriteAt([]byte{1}, 12<<20); err != nil {
		t.Fatal(err)
	}
	off, err := unix.Seek(int(f.Fd()), 0, unix.SEEK_DATA)
	return err == nil && off >= 8<<20
}

// markSparse does nothing: files written with gaps are sparse here.
func markSparse(t testing.TB, f *os.File) {}
