//go:build unix

package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// allocatedBytes is the disk space a file takes, from st_blocks.
func allocatedBytes(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Blocks * 512
}

// TestUnpackLeavesHoles: the zeros of an archive's disk stay holes in the
// unpacked file, through the outputs' sparse hook (a no-op here, FSCTL_SET_SPARSE
// on Windows) and the sizing before the write.
func TestUnpackLeavesHoles(t *testing.T) {
	const size, data = 64 << 20, 1 << 20
	dir := t.TempDir()
	img := filepath.Join(dir, "sparse.raw")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, data)
	for i := range chunk {
		chunk[i] = byte(i%251 + 1)
	}
	for _, off := range []int64{0, size - data} {
		if _, err := f.WriteAt(chunk, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if a := allocatedBytes(t, img); a > 8<<20 {
		t.Skipf("the filesystem of %s makes no holes (%d bytes allocated for %d written)", dir, a, 2*data)
	}
	archive := filepath.Join(dir, "a.vma")
	runInProcess(t, nil, nil, "pack", "-q", "-o", archive, img).mustSucceed(t)
	out := filepath.Join(dir, "u")
	runInProcess(t, nil, nil, "unpack", "-q", archive, out).mustSucceed(t)
	disk := filepath.Join(out, "disk-drive-scsi0.raw")
	if fileSHA(t, disk) != fileSHA(t, img) {
		t.Fatal("unpacked disk differs from the image")
	}
	if a := allocatedBytes(t, disk); a > 8<<20 {
		t.Errorf("unpacked disk takes %d bytes of disk for %d bytes of data in %d", a, 2*data, size)
	}
}
