//go:build windows

package main

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// catchSIGPIPE does nothing: Windows has no SIGPIPE, and a write to a pipe
// without a reader already fails instead of ending the process.
func catchSIGPIPE() {}

// isBrokenPipe reports whether err is a write to a pipe with no reader:
// Windows says ERROR_NO_DATA ("the pipe is being closed") or
// ERROR_BROKEN_PIPE, never EPIPE.
func isBrokenPipe(err error) bool {
	return errors.Is(err, windows.ERROR_NO_DATA) || errors.Is(err, windows.ERROR_BROKEN_PIPE)
}

// drawsEscapes turns on the console's handling of the escape sequences
// that redraw the progress line (Windows 10 and later; off by default in
// the classic console) and reports whether it is on. Without it the
// progress line is not drawn, rather than drawn as garbage. The mode stays
// on after vmatool exits, as it does for other tools; shells that care set
// their own.
func drawsEscapes(f *os.File) bool {
	h := windows.Handle(f.Fd())
	var mode uint32
	if err := windows.GetConsoleMode(h, &mode); err != nil {
		return false
	}
	if mode&windows.ENABLE_VIRTUAL_TERMINAL_PROCESSING != 0 {
		return true
	}
	return windows.SetConsoleMode(h, mode|windows.ENABLE_VIRTUAL_TERMINAL_PROCESSING) == nil
}
