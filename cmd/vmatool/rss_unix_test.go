//go:build unix

package main

import (
	"os"
	"runtime"
	"syscall"
)

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
