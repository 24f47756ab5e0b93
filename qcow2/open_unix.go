//go:build unix

package qcow2

import "golang.org/x/sys/unix"

// openFlags open a file for reading without waiting in open(2): with
// O_NONBLOCK a FIFO opens at once instead of waiting for a writer, and
// O_NOCTTY keeps a terminal from becoming the controlling one. Neither
// changes how a regular file or block device reads.
const openFlags = unix.O_RDONLY | unix.O_NONBLOCK | unix.O_NOCTTY
