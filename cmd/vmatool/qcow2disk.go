package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vmatool/vmatool/qcow2"
)

// openQcow2Disk opens a qcow2 image and, as o.backing says, its backing
// chain. o.dataFile is the external data file the user named, if any: the
// name inside the image is never opened, as it comes from an untrusted
// header. Backing file names come from the header too: the reader follows
// them only to regular files, and the chain is shown through o.chain
// before anything is read.
func openQcow2Disk(path string, o diskOptions) (*openedDisk, error) {
	img, err := qcow2.OpenFile(path, qcow2.Options{DataFilePath: o.dataFile, Backing: o.backing})
	if err != nil {
		var be *qcow2.BackingError
		switch {
		case errors.Is(err, qcow2.ErrBackingRefused):
			return nil, fmt.Errorf("%w (--no-backing)", err)
		case errors.As(err, &be):
			return nil, err // it names the image whose header names the file
		case o.dataFile == "" && isNoDataFile(err):
			return nil, fmt.Errorf("%s: %w (name it with --data-file %s=PATH)", path, err, path)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if chain := img.Backing(); len(chain) > 0 && o.chain != nil {
		o.chain(chainLine(path, chain))
	}
	return &openedDisk{path: path, format: "qcow2", disk: img, close: img.Close}, nil
}

// chainLine shows the files a read of path may touch, in lookup order:
// "vmatool: a.qcow2 reads backing chain: a.qcow2 -> b.qcow2 (qcow2) -> c.raw (raw)".
func chainLine(path string, chain []qcow2.BackingInfo) string {
	var b strings.Builder
	fmt.Fprintf(&b, "vmatool: %s reads backing chain: %s", path, path)
	for _, c := range chain {
		fmt.Fprintf(&b, " -> %s (%s)", c.Path, c.Format)
	}
	return b.String()
}

func isNoDataFile(err error) bool { return errors.Is(err, qcow2.ErrNoDataFile) }
