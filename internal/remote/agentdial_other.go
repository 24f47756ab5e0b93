//go:build !windows

package remote

import (
	"fmt"
	"io"
)

// openNamedPipe fails: named pipes of that form exist only on Windows.
func openNamedPipe(path string) (io.ReadWriteCloser, error) {
	return nil, fmt.Errorf("%s is a Windows named pipe, and this is not Windows", path)
}
