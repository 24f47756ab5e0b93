package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

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

// openDisk opens a raw or qcow2 image. With format "" the format comes from
// the file's first bytes, never from its name. dataFile is a qcow2 image's
// external data file, when the user named one.
func openDisk(path, format, dataFile string) (*openedDisk, error) {
	if format == "" {
		var err error
		if format, err = detectImageFormat(path); err != nil {
			return nil, err
		}
	}
	switch format {
	case "raw":
		if dataFile != "" {
			return nil, fmt.Errorf("%s: --data-file is for qcow2 images", path)
		}
		d, err := raw.Open(path)
		if err != nil {
			return nil, err
		}
		return &openedDisk{path: path, format: "raw", disk: d, close: d.Close}, nil
	case "qcow2":
		return openQcow2Disk(path, dataFile)
	}
	return nil, fmt.Errorf("%s: unsupported image format %q (want raw or qcow2)", path, format)
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
