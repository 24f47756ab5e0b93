//go:build windows

package main

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/windows"
)

// makeSparse marks the new, empty file f sparse, so that the blocks an
// extract skips stay unallocated: NTFS allocates the whole length of a
// file that is not sparse as soon as it is sized, and zero-fills it. A
// filesystem without sparse files (FAT, exFAT) refuses with
// ERROR_INVALID_FUNCTION or ERROR_NOT_SUPPORTED; the output is then dense,
// which costs space but not correctness, and makeSparse returns nil.
func makeSparse(f *os.File) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("%s: %w", f.Name(), err)
	}
	var ioErr error
	err = conn.Control(func(fd uintptr) {
		var n uint32
		ioErr = windows.DeviceIoControl(windows.Handle(fd), windows.FSCTL_SET_SPARSE, nil, 0, nil, 0, &n, nil)
	})
	if err == nil {
		err = ioErr
	}
	if err == nil || errors.Is(err, windows.ERROR_INVALID_FUNCTION) || errors.Is(err, windows.ERROR_NOT_SUPPORTED) {
		return nil
	}
	return fmt.Errorf("%s: marking sparse: %w", f.Name(), err)
}
