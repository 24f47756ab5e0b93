package raw

import (
	"errors"

	"golang.org/x/sys/unix"
)

const (
	whenceData = unix.SEEK_DATA
	whenceHole = unix.SEEK_HOLE
)

var (
	// errNoData is lseek's ENXIO: no data at or after the offset.
	errNoData = unix.ENXIO
	// errNoSeekData marks filesystems that do not implement SEEK_DATA.
	errNoSeekData = errors.New("SEEK_DATA not supported")
)

// sysSeek is lseek(2) that folds "SEEK_DATA not supported" errors into
// errNoSeekData. Linux returns EINVAL for an unknown whence; some FUSE and
// network filesystems return EOPNOTSUPP (ENOTSUP is the same number here).
func sysSeek(fd uintptr, off int64, whence int) (int64, error) {
	ret, err := unix.Seek(int(fd), off, whence)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTSUP) {
		return 0, errNoSeekData
	}
	return ret, err
}
