//go:build unix

package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"syscall"
)

// resetPeakRSS lowers this test process's peak RSS to what it holds now,
// before each run of the binary. On Linux a child started with vfork and
// exec inherits the parent's peak as its ru_maxrss, so after tests that
// grew this process (deploy's in-process servers) every child would seem
// to break the 64 MiB bound. Elsewhere, or on a kernel before 4.0, the
// write fails and nothing changes.
func resetPeakRSS() {
	debug.FreeOSMemory()
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS reads the child's peak resident set size from rusage. Linux
// reports ru_maxrss in KiB, macOS in bytes.
func peakRSS(ps *os.ProcessState) int64 {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok || ru == nil {
		return 0
	}
	if runtime.GOOS == "darwin" {
		return int64(ru.Maxrss)
	}
	return int64(ru.Maxrss) << 10
}
