package main

import (
	"runtime/debug"
)

// oneArg returns a command's single positional argument, or a usage
// error that says what it should have been.
func oneArg(args []string, what string) (string, error) {
	if len(args) != 1 {
		return "", usagef("want one %s, got %d arguments", what, len(args))
	}
	return args[0], nil
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
