package qcow2

import (
	"errors"
	"fmt"
)

// Errors a caller can test with errors.Is. Problems found in an image are
// returned wrapped in a *FormatError that names the file offset.
var (
	// ErrNotQcow2 means the file does not start with the qcow2 magic.
	ErrNotQcow2 = errors.New("not a qcow2 image")
	// ErrEncrypted means the image is encrypted (legacy AES or LUKS),
	// which this package does not decrypt.
	ErrEncrypted = errors.New("encrypted qcow2 image (AES/LUKS) not supported")
	// ErrUnsupported means the image is well formed but uses something
	// this package cannot read: an unknown version or incompatible
	// feature, an unknown compression type, a backing file format other
	// than qcow2 or raw.
	ErrUnsupported = errors.New("unsupported qcow2 feature")
	// ErrCorrupt means the image contradicts the format: bad sizes,
	// unaligned offsets, invalid entries, undecodable compressed data, or
	// the corrupt bit set (see Options.AllowCorrupt).
	ErrCorrupt = errors.New("corrupt qcow2 image")
	// ErrTruncated means a table or cluster the image points at lies past
	// the end of the file.
	ErrTruncated = errors.New("qcow2 image truncated")
	// ErrNoDataFile means the image keeps its data in an external file
	// and Options names none. The name in the header is never opened on
	// its own: it comes from an untrusted file.
	ErrNoDataFile = errors.New("qcow2 image needs an external data file (set Options.DataFile)")
	// ErrBackingFile means the backing file could not be opened or read,
	// or there is no Options.OpenBacking to open it.
	ErrBackingFile = errors.New("cannot open backing file")
	// ErrBackingLoop means the backing chain names a file twice.
	ErrBackingLoop = errors.New("backing chain has a loop")
	// ErrBackingDepth means the backing chain is longer than
	// Options.MaxBackingDepth.
	ErrBackingDepth = errors.New("backing chain too deep")
	// ErrClosed is returned by reads after Close.
	ErrClosed = errors.New("qcow2: image closed")
)

// FormatError reports a problem in an image: where in the file, and what.
type FormatError struct {
	Offset int64  // byte offset in the image (or data) file
	What   string // detail, e.g. "L2 entry 5: cluster offset 0x10200 not cluster-aligned"
	Err    error  // one of the Err* kinds, possibly wrapping a cause
}

// Error returns one line: "qcow2: at offset N (0xN): kind: detail".
func (e *FormatError) Error() string {
	if e.What == "" {
		return fmt.Sprintf("qcow2: at offset %d (0x%x): %v", e.Offset, e.Offset, e.Err)
	}
	return fmt.Sprintf("qcow2: at offset %d (0x%x): %v: %s", e.Offset, e.Offset, e.Err, e.What)
}

// Unwrap returns the kind of error, for errors.Is.
func (e *FormatError) Unwrap() error { return e.Err }

func formatErr(off int64, kind error, format string, args ...any) error {
	return &FormatError{Offset: off, What: fmt.Sprintf(format, args...), Err: kind}
}
