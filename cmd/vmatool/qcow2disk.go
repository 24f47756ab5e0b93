package main

import (
	"errors"
	"fmt"

	"github.com/vmatool/vmatool/qcow2"
)

// openQcow2Disk opens a qcow2 image and its backing chain. dataFile is the
// external data file the user named, if any: the name inside the image is
// never opened, as it comes from an untrusted header.
func openQcow2Disk(path, dataFile string) (*openedDisk, error) {
	img, err := qcow2.OpenFile(path, qcow2.Options{DataFilePath: dataFile})
	if err != nil {
		if dataFile == "" && isNoDataFile(err) {
			return nil, fmt.Errorf("%s: %w (name it with --data-file %s=PATH)", path, err, path)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &openedDisk{path: path, format: "qcow2", disk: img, close: img.Close}, nil
}

func isNoDataFile(err error) bool { return errors.Is(err, qcow2.ErrNoDataFile) }
