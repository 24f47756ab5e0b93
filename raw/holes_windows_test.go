//go:build windows

package raw

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/windows"
)

// markSparse marks f sparse, as vmatool's outputs are: on Windows only such
// files have holes. A filesystem that refuses leaves f dense, and
// holesSupported then reports false.
func markSparse(t testing.TB, f *os.File) {
	t.Helper()
	var n uint32
	err := windows.DeviceIoControl(windows.Handle(f.Fd()), windows.FSCTL_SET_SPARSE, nil, 0, nil, 0, &n, nil)
	if err != nil {
		t.Logf("FSCTL_SET_SPARSE on %s: %v", f.Name(), err)
	}
}

// holesSupported reports whether dir's filesystem reports an 8 MiB hole in
// a sparse file. It asks the kernel directly, not the code under test, so
// a broken NextData cannot talk its own assertions away.
func holesSupported(t testing.TB, dir string) bool {
	t.Helper()
	path := filepath.Join(dir, "probe")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(path)
	defer f.Close()
	markSparse(t, f)
	if _, err := f.WriteAt([]byte{1}, 12<<20); err != nil {
		t.Fatal(err)
	}
	var in, out [16]byte
	binary.LittleEndian.PutUint64(in[8:], 16<<20)
	var n uint32
	err = windows.DeviceIoControl(windows.Handle(f.Fd()), windows.FSCTL_QUERY_ALLOCATED_RANGES,
		&in[0], uint32(len(in)), &out[0], uint32(len(out)), &n, nil)
	if err != nil && err != windows.ERROR_MORE_DATA {
		return false
	}
	return n == 16 && binary.LittleEndian.Uint64(out[:]) >= 8<<20
}
