package main

import (
	"fmt"
	"io"
	"os"

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
// the file's first bytes, never from its name.
func openDisk(path, format string) (*openedDisk, error) {
	if format == "" {
		var err error
		if format, err = detectImageFormat(path); err != nil {
			return nil, err
		}
	}
	switch format {
	case "raw":
		d, err := raw.Open(path)
		if err != nil {
			return nil, err
		}
		return &openedDisk{path: path, format: "raw", disk: d, close: d.Close}, nil
	case "qcow2":
		return openQcow2Disk(path)
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
