package qcow2

import (
	"errors"
	"fmt"
	"strings"
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
	// the corrupt bit set (see WithAllowCorrupt).
	ErrCorrupt = errors.New("corrupt qcow2 image")
	// ErrTruncated means a table or cluster the image points at lies past
	// the end of the file.
	ErrTruncated = errors.New("qcow2 image truncated")
	// ErrNoDataFile means the image keeps its data in an external file
	// and no WithDataFile names it. The name in the header is never
	// opened on its own: it comes from an untrusted file.
	ErrNoDataFile = errors.New("qcow2 image needs an external data file, and none was given")
	// ErrBackingFile means the backing file could not be opened, or there
	// is no BackingOpener to open it. (A failure to read an open
	// backing file comes as a *BackingError wrapping its cause.)
	ErrBackingFile = errors.New("cannot open backing file")
	// ErrBackingLoop means the backing chain names a file twice.
	ErrBackingLoop = errors.New("backing chain has a loop")
	// ErrBackingDepth means the backing chain is longer than
	// WithMaxBackingDepth.
	ErrBackingDepth = errors.New("backing chain too deep")
	// ErrBackingRefused means the image names a backing file and
	// WithBacking(RefuseBacking) was given.
	ErrBackingRefused = errors.New("image has a backing file, and backing files are refused")
	// ErrBackingSkipped means a read needed the backing file of an image
	// opened with SkipBacking.
	ErrBackingSkipped = errors.New("backing file not opened")
	// ErrInvalidOption means an option was given a value out of its
	// range (each With function says which), or NewWriter a negative
	// size or a virtual size too large for the cluster size.
	ErrInvalidOption = errors.New("invalid qcow2 option")
	// ErrNotRegular means a backing file is not a regular file: a FIFO,
	// device, socket or directory, which OpenBackingFile never follows.
	// It comes wrapped with ErrBackingFile.
	ErrNotRegular = errors.New("not a regular file")
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
func (e *FormatError) Error() string { return "qcow2: " + e.text() }

func (e *FormatError) text() string {
	if e.What == "" {
		return fmt.Sprintf("at offset %d (0x%x): %v", e.Offset, e.Offset, e.Err)
	}
	return fmt.Sprintf("at offset %d (0x%x): %v: %s", e.Offset, e.Offset, e.Err, e.What)
}

// Unwrap returns the kind of error, for errors.Is.
func (e *FormatError) Unwrap() error { return e.Err }

func formatErr(off int64, kind error, format string, args ...any) error {
	return &FormatError{Offset: off, What: fmt.Sprintf(format, args...), Err: kind}
}

// BackingError reports a backing file that was not followed, or that
// failed: which image names it, where that image's header stores the
// name, and why. An image of the chain that cannot be opened or read as
// its format says is reported here too, its own error in Err.
type BackingError struct {
	Image  string // the image whose header names the backing file (its path, WithName's name, or resolved path); may be ""
	Offset int64  // backing_file_offset: where Image stores the name
	Name   string // the name as stored
	Path   string // what the BackingOpener resolved the name to, when it got that far
	Err    error  // ErrBackingFile, ErrBackingLoop, ErrBackingDepth, ErrBackingRefused, ErrBackingSkipped, or the backing image's error
}

// Error returns one line: `qcow2: IMAGE: backing file "NAME" (name at
// backing_file_offset 0xN, opened as PATH): reason`.
func (e *BackingError) Error() string {
	var b strings.Builder
	b.WriteString("qcow2: ")
	if e.Image != "" {
		b.WriteString(e.Image)
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, "backing file %q (name at backing_file_offset %#x", e.Name, e.Offset)
	if e.Path != "" && e.Path != e.Name {
		fmt.Fprintf(&b, ", opened as %s", e.Path)
	}
	b.WriteString("): ")
	// The reason may be the backing image's own *FormatError, whose
	// offset is in Path; one "qcow2: " prefix is enough.
	b.WriteString(strings.TrimPrefix(e.Err.Error(), "qcow2: "))
	return b.String()
}

// Unwrap returns the reason, for errors.Is and errors.As.
func (e *BackingError) Unwrap() error { return e.Err }
