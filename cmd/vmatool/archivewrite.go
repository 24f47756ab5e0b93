package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/vmatool/vmatool/vma"
)

// deferredWriter lets a vma.Writer be set up, and so validate every config
// and device, before the output file exists.
type deferredWriter struct{ w io.Writer }

func (d *deferredWriter) Write(p []byte) (int, error) { return d.w.Write(p) }

// packSpec is a fully validated archive: configs and devices added to w.
type packSpec struct {
	w     *vma.Writer
	out   *deferredWriter
	disks []*openedDisk
	ids   []int
	total int64
}

// newPackSpec adds configs and disks to a new writer; any refusal (a size
// not a multiple of 512, a duplicate name, too many disks, an oversized
// config) happens here, before an output exists.
func newPackSpec(configs []vma.Config, names []string, disks []*openedDisk, opts ...vma.WriterOption) (*packSpec, error) {
	ps := &packSpec{out: &deferredWriter{}, disks: disks}
	w, err := vma.NewWriter(ps.out, opts...)
	if err != nil {
		return nil, err
	}
	ps.w = w
	for _, c := range configs {
		if err := w.AddConfig(c.Name, c.Data); err != nil {
			return nil, err
		}
	}
	for i, d := range disks {
		id, err := w.AddDevice(names[i], d.disk.Size())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.path, err)
		}
		ps.ids = append(ps.ids, id)
		ps.total += d.disk.Size()
	}
	return ps, nil
}

// writeTo streams the archive into out.
func (ps *packSpec) writeTo(ctx context.Context, out io.Writer, p vma.Progress) error {
	ps.out.w = out
	for i, d := range ps.disks {
		if err := ps.w.WriteDisk(ctx, ps.ids[i], d.disk, p); err != nil {
			return fmt.Errorf("%s: %w", d.path, err)
		}
	}
	return ps.w.Close()
}

// archiveSink is where a packed archive goes: a file under a temporary
// name, a FIFO, a command, or standard output; compressed or not.
type archiveSink struct {
	file   *outFile       // temporary file to commit, or nil
	direct io.WriteCloser // FIFO or command, closed on finish
	comp   io.WriteCloser
	wait   func() error // for commands: wait for exit
}

func (k *archiveSink) Write(p []byte) (int, error) { return k.comp.Write(p) }

// finish flushes the compressor and commits the output.
func (k *archiveSink) finish() error {
	if err := k.comp.Close(); err != nil {
		k.abort()
		return err
	}
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

// abort stops the compressor's goroutines and removes or closes the output.
// For a command it returns how the command ended, which usually explains a
// broken pipe better than the pipe does.
func (k *archiveSink) abort() error {
	k.comp.Close() // its error is moot: the output is being thrown away
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

func newSink(w io.Writer, comp vma.Compression, level int) (*archiveSink, error) {
	c, err := vma.Compress(w, comp, vma.WithLevel(level))
	if err != nil {
		return nil, err
	}
	return &archiveSink{comp: c}, nil
}

// fileSink writes to path through a temporary name in its folder (or
// straight into an existing FIFO). It creates no folder: a missing one is an
// error, so a failure leaves nothing behind.
func fileSink(path string, force bool, comp vma.Compression, level int) (*archiveSink, error) {
	if st, err := os.Stat(path); err == nil && st.Mode()&os.ModeNamedPipe != 0 {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		k, err := newSink(f, comp, level)
		if err != nil {
			f.Close()
			return nil, err
		}
		k.direct = f
		return k, nil
	}
	f, err := createOutput(path, force)
	if err != nil {
		return nil, err
	}
	k, err := newSink(f, comp, level)
	if err != nil {
		f.Abort()
		return nil, err
	}
	k.file = f
	return k, nil
}
