package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/vmatool/vmatool/qcow2"
	"github.com/vmatool/vmatool/raw"
	"github.com/vmatool/vmatool/vma"
)

// openedDisk is a disk image opened for packing.
type openedDisk struct {
	path   string
	format string // "raw" or "qcow2"
	disk   vma.Disk
	close  func() error
}

const qcow2Magic = "QFI\xfb"

// openDisk opens a raw or qcow2 image and the backing chain of a qcow2
// image. With format "" the format comes from the file's first bytes,
// never from its name. dataFile is a qcow2 image's external data file,
// when the user named one.
func openDisk(path, format, dataFile string) (*openedDisk, error) {
	return openDiskWith(path, diskOptions{format: format, dataFile: dataFile})
}

// diskOptions say how openDiskWith opens an image.
type diskOptions struct {
	format   string // "raw", "qcow2", or "" to detect
	dataFile string // a qcow2 image's external data file, named by the user
	// backing is what to do with a qcow2 image's backing file: follow it
	// (only to regular files), leave it closed, or refuse the image.
	backing qcow2.BackingMode
	// chain, if set, is given one line that shows the backing chain
	// reads will follow, when there is one.
	chain func(line string)
}

func openDiskWith(path string, o diskOptions) (*openedDisk, error) {
	format := o.format
	if format == "" {
		var err error
		if format, err = detectImageFormat(path); err != nil {
			return nil, err
		}
	}
	switch format {
	case "raw":
		if o.dataFile != "" {
			return nil, fmt.Errorf("%s: --data-file is for qcow2 images", path)
		}
		d, err := raw.Open(path)
		if err != nil {
			return nil, err
		}
		return &openedDisk{path: path, format: "raw", disk: d, close: d.Close}, nil
	case "qcow2":
		return openQcow2Disk(path, o)
	}
	return nil, fmt.Errorf("%s: unsupported image format %q (want raw or qcow2)", path, format)
}

// backingMode maps --no-backing, and for info --backing-chain, to what
// the qcow2 reader does with a backing file.
func backingMode(noBacking, follow bool) qcow2.BackingMode {
	switch {
	case noBacking:
		return qcow2.RefuseBacking
	case follow:
		return qcow2.FollowBacking
	}
	return qcow2.SkipBacking
}

func detectImageFormat(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var head [4]byte
	n, err := io.ReadFull(f, head[:])
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if string(head[:n]) == qcow2Magic {
		return "qcow2", nil
	}
	return "raw", nil
}

func closeDisks(ds []*openedDisk) {
	for _, d := range ds {
		if d != nil && d.close != nil {
			d.close()
		}
	}
}

// dataFiles parses --data-file values, IMAGE=PATH or, with one disk, PATH.
func dataFiles(values, disks []string) (map[string]string, error) {
	m := map[string]string{}
	for _, v := range values {
		img, file, ok := strings.Cut(v, "=")
		if !ok {
			if len(disks) != 1 {
				return nil, usagef("--data-file %q: with several disks, say which image it belongs to: IMAGE=PATH", v)
			}
			img, file = disks[0], v
		}
		if !slices.Contains(disks, img) {
			return nil, usagef("--data-file %q: %s is not one of the disks", v, img)
		}
		m[img] = file
	}
	return m, nil
}
