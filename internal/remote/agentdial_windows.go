package remote

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// errorPipeBusy is ERROR_PIPE_BUSY: every instance of the pipe is taken
// for the moment; the agent opens a new one for the next client.
const errorPipeBusy syscall.Errno = 231

// openNamedPipe opens the client end of a named pipe. CreateFile on a
// pipe path (what os.OpenFile calls) is how a pipe client connects; the
// agent protocol is request and answer, so synchronous I/O is enough.
func openNamedPipe(path string) (io.ReadWriteCloser, error) {
	deadline := time.Now().Add(2 * time.Second)
	for {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, errorPipeBusy) || time.Now().After(deadline) {
			return nil, fmt.Errorf("opening the agent's pipe: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
