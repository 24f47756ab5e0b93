package filekind

import (
	"io/fs"
	"testing"
)

func TestOf(t *testing.T) {
	for mode, want := range map[fs.FileMode]string{
		fs.ModeDir | 0o755:                "a directory",
		fs.ModeNamedPipe | 0o644:          "a pipe",
		fs.ModeSocket | 0o777:             "a socket",
		fs.ModeDevice | fs.ModeCharDevice: "a character device",
		fs.ModeDevice | 0o660:             "a block device",
		0o644:                             "a regular file",
		fs.ModeSymlink | 0o777:            "a file of mode Lrwxrwxrwx",
		fs.ModeIrregular | fs.ModeSetuid:  "a file of mode u?---------",
	} {
		if got := Of(mode); got != want {
			t.Errorf("Of(%v) = %q, want %q", mode, got, want)
		}
	}
}
