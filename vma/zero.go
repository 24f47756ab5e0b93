package vma

import "bytes"

var zeroBlock [BlockSize]byte

// isZero reports whether b (at most one block) is all zero. bytes.Equal
// against a zero page runs the runtime's vectorised memequal, which is as
// fast as a hand-written word loop gets and needs no unsafe.
func isZero(b []byte) bool { return bytes.Equal(b, zeroBlock[:len(b)]) }
