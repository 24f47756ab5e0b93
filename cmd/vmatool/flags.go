package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/spf13/pflag"
)

var errHelp = errors.New("help shown")

// newFlags returns a flag set that reports errors instead of printing
// them, with the --help flag every command has.
func newFlags(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	fs.Usage = func() {}
	fs.BoolP("help", "h", false, "show this help")
	return fs
}

// parseFlags parses args and handles --help; help is printed with the
// flag defaults spliced in at the "OPTIONS:" marker.
func parseFlags(s *streams, fs *pflag.FlagSet, help string, args []string) error {
	err := fs.Parse(args)
	if h, _ := fs.GetBool("help"); h || errors.Is(err, pflag.ErrHelp) {
		// Every help ends with its EXIT STATUS section, which the statuses
		// any command may end with complete.
		text := strings.Replace(help, "OPTIONS:\n", "OPTIONS:\n"+fs.FlagUsages(), 1)
		fmt.Fprint(s.out, text+exitStatusHelp)
		return errHelp
	}
	if err != nil {
		return usageError{flagError(fs, err).Error()}
	}
	return progressConflict(fs)
}

// oneArg returns the command's single positional argument, or a usage
// error that says what it should have been.
func oneArg(fs *pflag.FlagSet, what string) (string, error) {
	if fs.NArg() != 1 {
		return "", usagef("want one %s, got %d arguments", what, fs.NArg())
	}
	return fs.Arg(0), nil
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// runArgs runs a command on a command line of its own, outside the
// command tree: convert hands its archive outputs to pack this way.
func runArgs(ctx context.Context, s *streams, name string, flags func(*pflag.FlagSet, *streams) runner, args []string) error {
	fs := newFlags(name)
	run := flags(fs, s)
	if err := fs.Parse(args); err != nil {
		return usageError{flagError(fs, err).Error()}
	}
	return run(ctx)
}
