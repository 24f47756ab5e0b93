//go:build !windows

package main

import (
	"errors"
	"os"
	"os/signal"
	"syscall"
)

// catchSIGPIPE makes a write to a closed standard output return EPIPE
// instead of killing the process, so the command can clean up.
func catchSIGPIPE() {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
}

// isBrokenPipe reports whether err is a write to a pipe with no reader.
func isBrokenPipe(err error) bool { return errors.Is(err, syscall.EPIPE) }

// drawsEscapes reports whether the terminal f interprets the escape
// sequences that redraw the progress line; Unix terminals do.
func drawsEscapes(f *os.File) bool { return true }
