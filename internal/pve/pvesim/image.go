package pvesim

import (
	"bytes"
	"errors"
	"io"

	"github.com/vmatool/vmatool/qcow2"
)

// checkImage is the check pve-storage src/PVE/Storage/Plugin.pm
// file_size_info makes of an untrusted image with `qemu-img info -f
// FORMAT`: the image must read as that format and name no backing or
// external data file. It returns the error the real check dies with, or
// "".
func checkImage(format, path string, data []byte) string {
	switch format {
	case "qcow2":
		img, err := qcow2.New(bytes.NewReader(data), qcow2.WithBacking(qcow2.SkipBacking))
		switch {
		case errors.Is(err, qcow2.ErrNoDataFile):
			return path + ": 'data-file' references are not allowed!"
		case err != nil:
			return "failed to query file information with qemu-img"
		}
		defer img.Close()
		if img.DataFileName() != "" {
			return path + ": 'data-file' references are not allowed!"
		}
		if img.BackingFileName() != "" {
			return "backing file not allowed for untrusted image '" + path + "'!"
		}
	case "vmdk":
		if len(data) < 4 || string(data[:4]) != "KDMV" {
			return "failed to query file information with qemu-img"
		}
	}
	return ""
}

// convertImage is what the import's `qemu-img convert` writes onto the
// new raw disk (qemu-server src/PVE/QemuServer/ImportDisk.pm): a qcow2
// image's virtual disk, other formats as they are.
func convertImage(format string, data []byte) ([]byte, error) {
	if format != "qcow2" {
		return data, nil
	}
	img, err := qcow2.New(bytes.NewReader(data), qcow2.WithBacking(qcow2.RefuseBacking))
	if err != nil {
		return nil, err
	}
	defer img.Close()
	out := make([]byte, img.Size())
	if _, err := io.ReadFull(io.NewSectionReader(img, 0, img.Size()), out); err != nil {
		return nil, err
	}
	return out, nil
}
