//go:build !linux && !darwin && !windows

package raw

import (
	"os"
	"testing"
)

// holesSupported is false where the package does not ask for holes.
func holesSupported(t testing.TB, dir string) bool { return false }

// markSparse does nothing: the package does not ask for holes here.
func markSparse(t testing.TB, f *os.File) {}
