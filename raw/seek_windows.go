//go:build windows

package raw

import (
	"errors"

	"golang.org/x/sys/windows"
)

// Windows has no lseek holes; sysSeek answers SEEK_DATA and SEEK_HOLE from
// FSCTL_QUERY_ALLOCATED_RANGES (see allocated.go). NTFS reports a sparse
// file's allocated ranges and a file that is not sparse as one range, so
// only sparse images have holes to skip.
const (
	whenceData = 3 // lseek's numbers on Linux, used here only as names
	whenceHole = 4
)

var (
	errNoData     = errors.New("no data")
	errNoSeekData = errors.New("FSCTL_QUERY_ALLOCATED_RANGES not supported")
)

// sysSeek runs the allocated-range queries on the file handle fd. A
// filesystem without the control code (FAT, exFAT, some network shares)
// answers ERROR_INVALID_FUNCTION or ERROR_NOT_SUPPORTED; that is
// errNoSeekData, and the disk is all data.
func sysSeek(fd uintptr, off int64, whence int) (int64, error) {
	query := func(off int64, out []byte) (int, bool, error) {
		var in [allocatedRangeSize]byte
		putRangeQuery(&in, off)
		var n uint32
		err := windows.DeviceIoControl(windows.Handle(fd), windows.FSCTL_QUERY_ALLOCATED_RANGES,
			&in[0], uint32(len(in)), &out[0], uint32(len(out)), &n, nil)
		switch {
		case err == nil:
			return int(n), false, nil
		case errors.Is(err, windows.ERROR_MORE_DATA):
			// The ranges that fit are in out; the rest is asked for again.
			return int(n), true, nil
		case errors.Is(err, windows.ERROR_INVALID_FUNCTION), errors.Is(err, windows.ERROR_NOT_SUPPORTED):
			return 0, false, errNoSeekData
		}
		return 0, false, err
	}
	return seekAllocated(query, off, whence == whenceData)
}
