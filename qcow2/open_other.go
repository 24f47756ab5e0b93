//go:build !unix

package qcow2

import "os"

// openFlags open a file for reading; the platform has no FIFOs that
// block in open.
const openFlags = os.O_RDONLY
