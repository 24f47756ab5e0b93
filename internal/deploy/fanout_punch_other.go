//go:build !linux

package deploy

import (
	"errors"
	"os"
)

// punchHole is Linux's alone: elsewhere the spill file keeps what every
// reader has passed until the shared archive is done.
func punchHole(f *os.File, off, n int64) error {
	return errors.ErrUnsupported
}
