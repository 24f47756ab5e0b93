package main

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/spf13/pflag"
)

const versionHelp = `Usage: vmatool version

Prints vmatool's version, as "vmatool --version" does: the module version
it was built from (with "go install ...@v1.2.3"), or (devel).

OPTIONS:

EXAMPLES:
  vmatool version

EXIT STATUS:
  0 ok, 2 usage error.
`

// versionOptions are version's: no flags of its own, and no arguments.
type versionOptions struct {
	cmdLine
}

func (o *versionOptions) addFlags(*pflag.FlagSet) {}

func runVersion(_ context.Context, s *streams, o *versionOptions) error {
	if len(o.args) > 0 {
		return usagef("version takes no arguments, got %d", len(o.args))
	}
	_, err := fmt.Fprintln(s.out, "vmatool", version())
	return err
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
