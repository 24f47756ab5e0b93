//go:build !unix

package main

import "testing"

// allocatedBytes needs st_blocks; elsewhere the tests that look at how
// much of a file is allocated skip.
func allocatedBytes(t *testing.T, path string) int64 {
	t.Helper()
	t.Skip("file allocation is only measured on unix")
	return 0
}
