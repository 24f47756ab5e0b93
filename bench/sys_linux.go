package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// maxRSSKiB is the peak resident set of a finished process. The kernel
// folds in the peaks of the children it waited for, so for "sh -c CMD" it
// covers CMD too.
func maxRSSKiB(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss // KiB on Linux
	}
	return 0
}

// allocatedBytes is the space path takes, summed over a directory tree:
// for sparse files it is less than their size, which is the point of
// measuring it.
func allocatedBytes(path string) int64 {
	var n int64
	filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if info, err := d.Info(); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			}
		}
		return nil
	})
	return n
}

// freeBytes is the space an unprivileged writer can still use in dir, or -1.
func freeBytes(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return -1
	}
	return int64(st.Bavail) * st.Bsize
}
