package main

import (
	"os"

	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// stderrSize is standard error's terminal size, asked at each redraw so
// that a resized window is followed; 0, 0 when it is no terminal.
func stderrSize() (width, height int) {
	w, h, err := term.GetSize(int(os.Stderr.Fd()))
	if err != nil {
		return 0, 0
	}
	return w, h
}

// addProgressFlag adds --progress onto on; the command's run function
// hands it to the display with streams.withProgress.
func addProgressFlag(fs *pflag.FlagSet, on *bool) {
	fs.BoolVar(on, "progress", false, "show progress on standard error even when it is not a terminal: a line every 5 seconds, and a summary")
}

// withProgress is s with --progress on when on is; the display reads it
// from the streams, which every command's output already goes through.
func (s *streams) withProgress(on bool) *streams {
	if !on || s.progress {
		return s
	}
	c := *s
	c.progress = true
	return &c
}

// progressConflict refuses --progress with a flag that turns progress
// off (--quiet, or verify's -v, whose own progress lines go to standard
// output), rather than let one of them silently win.
func progressConflict(fs *pflag.FlagSet) error {
	p := fs.Lookup("progress")
	if p == nil || !p.Changed {
		return nil
	}
	for _, name := range []string{"quiet", "verbose"} {
		if f := fs.Lookup(name); f != nil && f.Changed && f.Value.String() == "true" {
			return usagef("--progress and --%s contradict each other: choose one", name)
		}
	}
	return nil
}
