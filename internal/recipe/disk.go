package recipe

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/vmatool/vmatool/internal/codec"
	"github.com/vmatool/vmatool/qcow2"
	"github.com/vmatool/vmatool/raw"
	"github.com/vmatool/vmatool/vma"
)

// ErrRawDataFile is an external data file given for a raw image; only
// qcow2 images keep their data apart.
var ErrRawDataFile = errors.New("an external data file is for qcow2 images")

// DiskError is an image that could not be opened, and which one.
type DiskError struct {
	Path string
	Err  error
}

func (e *DiskError) Error() string { return e.Path + ": " + e.Err.Error() }

// Unwrap returns the reason, for errors.Is and errors.As.
func (e *DiskError) Unwrap() error { return e.Err }

// Device is an opened disk image.
type Device struct {
	// Name is the VMA device name ("drive-scsi0"), set by Open.
	Name string
	// Key is the drive key ("scsi0"), set by Open unless Spec.Verbatim.
	Key string
	// Path is the image as the Disk named it.
	Path string
	// Format is FormatRaw or FormatQcow2.
	Format string
	// Disk reads the virtual disk: a *raw.Disk or a *qcow2.Image, both of
	// which report where their data is, so holes are never read.
	Disk vma.Disk
	// Backing lists the backing chain a qcow2 image reads through, in
	// lookup order; empty if it has none or it was not opened.
	Backing []qcow2.BackingInfo
	// ID is the device's dev_id in the archive, set by Open.
	ID int

	close func() error
}

// Close closes the image and its backing chain.
func (d *Device) Close() error { return d.close() }

// BackingMode maps the usual pair of choices to a qcow2.BackingMode:
// refuse an image with a backing file, else follow the chain or leave it
// closed.
func BackingMode(refuse, follow bool) qcow2.BackingMode {
	switch {
	case refuse:
		return qcow2.RefuseBacking
	case follow:
		return qcow2.FollowBacking
	}
	return qcow2.SkipBacking
}

// OpenDisk opens one image (d.Name plays no part) as the options say; a
// qcow2 image with its backing chain, whose line is given to WithChain's
// callback. Without d.Format the format comes from the file's first
// bytes: qcow2 by its magic, a VMA archive (compressed or not) is refused
// with ErrArchive, anything else is raw. An explicit format is taken at
// its word, as Proxmox's "vma create" takes it.
func OpenDisk(d Disk, opts ...Option) (*Device, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	return openDisk(d, o)
}

func openDisk(d Disk, o *options) (*Device, error) {
	format := d.Format
	if format == "" {
		var err error
		if format, err = diskFormat(d.Path); err != nil {
			return nil, err
		}
	}
	switch format {
	case FormatRaw:
		if d.DataFile != "" {
			return nil, &DiskError{d.Path, ErrRawDataFile}
		}
		r, err := raw.Open(d.Path)
		if err != nil {
			return nil, err
		}
		return &Device{Path: d.Path, Format: FormatRaw, Disk: r, close: r.Close}, nil
	case FormatQcow2:
		return openQcow2(d, o)
	}
	return nil, &DiskError{d.Path, fmt.Errorf("unsupported image format %q (want raw or qcow2)", format)}
}

// diskFormat tells a qcow2 image from a raw one, and refuses an archive.
// A compressed file that is no archive counts as raw, as it did before
// archives were looked for: the bytes are what they are.
func diskFormat(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head, err := readHead(f)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	format := plainFormat(head)
	if format == FormatRaw && codec.Detect(head) != vma.None {
		// A decompressor that fails to start says the bytes are not a
		// compressed archive either.
		if archive, _ := compressedArchive(f, nil); archive {
			format = FormatVMA
		}
	}
	if format == FormatVMA {
		return "", &DiskError{path, ErrArchive}
	}
	return format, nil
}

// openQcow2 opens a qcow2 image and, as o.backing says, its backing chain.
// d.DataFile is the external data file the caller named, if any: the name
// inside the image is never opened, as it comes from an untrusted header.
// Backing file names come from the header too: the reader follows them
// only to regular files, and the chain is shown through o.chain before
// anything is read.
func openQcow2(d Disk, o *options) (*Device, error) {
	opts := []qcow2.Option{qcow2.WithBacking(o.backing)}
	if d.DataFile != "" {
		opts = append(opts, qcow2.WithDataFile(d.DataFile))
	}
	img, err := qcow2.Open(d.Path, opts...)
	if err != nil {
		var be *qcow2.BackingError
		if errors.As(err, &be) {
			return nil, err // it names the image whose header names the file
		}
		return nil, &DiskError{d.Path, err}
	}
	chain := img.Backing()
	if len(chain) > 0 && o.chain != nil {
		o.chain(DescribeChain(d.Path, chain))
	}
	return &Device{Path: d.Path, Format: FormatQcow2, Disk: img, Backing: chain, close: img.Close}, nil
}

// DescribeChain shows the files a read of path may touch, in lookup order:
// "a.qcow2 reads backing chain: a.qcow2 -> b.qcow2 (qcow2) -> c.raw (raw)".
func DescribeChain(path string, chain []qcow2.BackingInfo) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s reads backing chain: %s", path, path)
	for _, c := range chain {
		fmt.Fprintf(&b, " -> %s (%s)", c.Path, c.Format)
	}
	return b.String()
}
