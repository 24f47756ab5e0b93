// Package filekind names the type of a file that is not a regular one,
// for the errors of readers and writers that need a regular file or a
// block device.
package filekind

import "io/fs"

// Of names mode's file type as a noun phrase: "a directory", "a pipe",
// "a socket", "a character device", "a block device", or for anything
// else "a file of mode ...".
func Of(mode fs.FileMode) string {
	switch {
	case mode.IsDir():
		return "a directory"
	case mode&fs.ModeNamedPipe != 0:
		return "a pipe"
	case mode&fs.ModeSocket != 0:
		return "a socket"
	case mode&fs.ModeCharDevice != 0:
		return "a character device"
	case mode&fs.ModeDevice != 0:
		return "a block device"
	case mode.IsRegular():
		return "a regular file"
	}
	return "a file of mode " + mode.String()
}
