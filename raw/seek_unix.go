//go:build linux || darwin

package raw

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Linux and macOS share lseek's SEEK_DATA and SEEK_HOLE; on macOS, APFS
// tracks holes, and filesystems without sparse files answer "all data" or
// refuse the whence (see sysSeek). x/sys/unix carries each system's
// numbers: SEEK_DATA is 3 on Linux and 4 on macOS, SEEK_HOLE the other.
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
// errNoSeekData. Both systems return EINVAL for an unknown whence; some
// FUSE, network and older macOS filesystems return EOPNOTSUPP or ENOTSUP
// (one number on Linux, two on macOS).
func sysSeek(fd uintptr, off int64, whence int) (int64, error) {
	ret, err := unix.Seek(int(fd), off, whence)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTSUP) {
		return 0, errNoSeekData
	}
	return ret, err
}
