package main

import (
	"io"
	"os"
)

// archiveSink is where a packed archive goes: a file under a temporary
// name, a FIFO, a command, or standard output. The archive arrives
// compressed as asked (recipe.Pack.WriteArchive compresses).
type archiveSink struct {
	w      io.Writer
	file   *outFile       // temporary file to commit, or nil
	direct io.WriteCloser // FIFO or command, closed on finish
	wait   func() error   // for commands: wait for exit
}

func (k *archiveSink) Write(p []byte) (int, error) { return k.w.Write(p) }

// finish commits the output.
func (k *archiveSink) finish() error {
	if k.direct != nil {
		err := k.direct.Close()
		if k.wait != nil {
			if werr := k.wait(); err == nil {
				err = werr
			}
		}
		return err
	}
	if k.file != nil {
		return k.file.Commit()
	}
	return nil
}

// abort removes or closes the output. For a command it returns how the
// command ended, which usually explains a broken pipe better than the pipe
// does.
func (k *archiveSink) abort() error {
	if k.file != nil {
		k.file.Abort()
	}
	if k.direct != nil {
		k.direct.Close()
		if k.wait != nil {
			return k.wait()
		}
	}
	return nil
}

// fileSink writes to path through a temporary name in its folder (or
// straight into an existing FIFO). It creates no folder: a missing one is an
// error, so a failure leaves nothing behind.
func fileSink(path string, force bool) (*archiveSink, error) {
	if st, err := os.Stat(path); err == nil && st.Mode()&os.ModeNamedPipe != 0 {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		return &archiveSink{w: f, direct: f}, nil
	}
	f, err := createOutput(path, force)
	if err != nil {
		return nil, err
	}
	return &archiveSink{w: f, file: f}, nil
}
