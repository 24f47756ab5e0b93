//go:build !linux

package raw

import "testing"

// holesSupported is false where the package does not ask for holes.
func holesSupported(t testing.TB, dir string) bool { return false }
