package vma

import (
	"errors"
	"fmt"
)

// Errors a caller can test with errors.Is. Each malformed-archive error is
// returned wrapped in a *FormatError that adds the archive offset.
var (
	ErrNotVMA            = errors.New("not a VMA archive (bad magic)")
	ErrVersion           = errors.New("unsupported VMA version")
	ErrHeaderChecksum    = errors.New("header checksum mismatch")
	ErrHeaderSize        = errors.New("bad header size")
	ErrBlobPointer       = errors.New("bad blob pointer")
	ErrExtentChecksum    = errors.New("extent checksum mismatch")
	ErrExtentMagic       = errors.New("bad extent magic")
	ErrExtentUUID        = errors.New("extent uuid does not match the header")
	ErrShortHeader       = errors.New("short header (archive truncated)")
	ErrShortExtent       = errors.New("short extent (archive truncated)")
	ErrBlockCount        = errors.New("extent block count does not match its masks")
	ErrUnknownDevice     = errors.New("extent names an unknown device")
	ErrDuplicateCluster  = errors.New("duplicated cluster")
	ErrMissingCluster    = errors.New("missing cluster")
	ErrBeyondEnd         = errors.New("block past the end of the device")
	ErrVMStateOrder      = errors.New("vmstate clusters out of order")
	ErrInvalidDevice     = errors.New("invalid device")
	ErrInvalidConfig     = errors.New("invalid config")
	ErrOrder             = errors.New("called out of order")
	ErrWriteAfterClose   = errors.New("write after close")
	ErrClusterOutOfRange = errors.New("cluster number out of range")
	ErrUnusedSlot        = errors.New("unused extent slot (dev_id 0) carries data")
	ErrUnsafeName        = errors.New("unsafe name")
	ErrDuplicateName     = errors.New("duplicate name")
)

// FormatError reports a malformed archive: where, and what was wrong.
// Offsets count bytes of the uncompressed archive stream.
type FormatError struct {
	Offset int64
	What   string // detail, e.g. "got 0x1f, want 0"
	Err    error  // one of the Err* kinds
}

func (e *FormatError) Error() string {
	if e.What == "" {
		return fmt.Sprintf("vma: at offset %d (0x%x): %v", e.Offset, e.Offset, e.Err)
	}
	return fmt.Sprintf("vma: at offset %d (0x%x): %v: %s", e.Offset, e.Offset, e.Err, e.What)
}

func (e *FormatError) Unwrap() error { return e.Err }

func formatErr(off int64, kind error, format string, args ...any) error {
	return &FormatError{Offset: off, What: fmt.Sprintf(format, args...), Err: kind}
}
