package main

import (
	"fmt"
	"io"
	"os"

	"github.com/vmatool/vmatool/vma"
)

// archiveInput is an open archive: file or stdin, decompressed by magic,
// header read.
type archiveInput struct {
	name    string
	comp    vma.Compression
	reader  *vma.Reader
	meter   singleMeter
	closers []io.Closer
}

// openArchive opens path ("-" reads stdin). The meter counts input bytes,
// so for a compressed archive it measures progress through the file.
func openArchive(s *streams, path string, quiet bool, label string, opts ...vma.DecompressOption) (*archiveInput, error) {
	return openArchiveWith(s, path, quiet, label, nil, opts...)
}

// openArchiveArg opens the archive that is a command's one positional
// argument, without a progress display: for list and config, which read
// no more than its header.
func openArchiveArg(s *streams, args []string, window maxWindow) (*archiveInput, error) {
	path, err := oneArg(args, "ARCHIVE")
	if err != nil {
		return nil, err
	}
	return openArchive(s, path, true, "", window.option())
}

// openArchiveWith is openArchive with options for the reader, such as
// vma.WithSalvage.
func openArchiveWith(s *streams, path string, quiet bool, label string, readerOpts []vma.ReaderOption, opts ...vma.DecompressOption) (*archiveInput, error) {
	a := &archiveInput{name: path}
	var in io.Reader = s.in
	var total int64
	if path == "-" {
		a.name = "<stdin>"
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		a.closers = append(a.closers, f)
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			total = st.Size()
		}
		in = f
	}
	a.meter = newMeter(s, quiet, label, total)
	dr, comp, err := vma.Decompress(progressReader{in, a.meter}, opts...)
	if err != nil {
		a.Close()
		return nil, a.wrap(err)
	}
	a.comp = comp
	a.closers = append([]io.Closer{dr}, a.closers...)
	r, err := vma.NewReader(dr, readerOpts...)
	if err != nil {
		a.Close()
		return nil, a.wrap(err)
	}
	a.reader = r
	return a, nil
}

// wrap names the archive in an error; for a compressed archive it says that
// offsets count decompressed bytes.
func (a *archiveInput) wrap(err error) error {
	if err == nil {
		return nil
	}
	err = windowHint(err)
	if a.comp != vma.None && a.comp != "" {
		return fmt.Errorf("%s (%s-compressed, offsets are in the decompressed stream): %w", a.name, a.comp, err)
	}
	return fmt.Errorf("%s: %w", a.name, err)
}

// outputErr reports an output that could not be made for an entry of the
// archive, naming the entry and where the header names it.
func (a *archiveInput) outputErr(entry string, nameOff int64, err error) error {
	return a.wrap(fmt.Errorf("%s, named at offset %d: %w", entry, nameOff, err))
}

func (a *archiveInput) Close() {
	a.meter.Finish()
	for _, c := range a.closers {
		c.Close()
	}
}
