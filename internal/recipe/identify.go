package recipe

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/vmatool/vmatool/internal/codec"
	"github.com/vmatool/vmatool/qcow2"
	"github.com/vmatool/vmatool/vma"
)

// Formats a file can have, as Identify names them.
const (
	FormatRaw   = "raw"
	FormatQcow2 = "qcow2"
	FormatVMA   = "vma"
)

var (
	// ErrArchive is a VMA archive given where a disk image belongs.
	ErrArchive = errors.New("a VMA archive, not a disk image (vmatool convert turns an archive into disk images)")
	// ErrCompressedImage is a compressed file that is not a VMA archive,
	// given where an image or an archive belongs: the image must be
	// decompressed first.
	ErrCompressedImage = errors.New("a compressed file that is not a VMA archive")
)

// compressedImage is ErrCompressedImage with the compression it has.
type compressedImage struct{ c vma.Compression }

func (e compressedImage) Error() string {
	return fmt.Sprintf("a %s-compressed file that is not a VMA archive; give an image or an archive", e.c)
}

func (e compressedImage) Is(target error) bool { return target == ErrCompressedImage }

// Source is a file told apart by its content, never by its name.
type Source struct {
	Path string
	// Format is FormatVMA, FormatQcow2 or FormatRaw.
	Format string
	// Compression is an archive's compression (vma.None for an image).
	Compression vma.Compression
	// Size is the size of the file, compressed or not.
	Size int64
}

// Archive reports whether s is a VMA archive.
func (s *Source) Archive() bool { return s.Format == FormatVMA }

// Identify tells a VMA archive (uncompressed, or compressed with anything
// vma.Decompress reads) from a qcow2 or raw image. A compressed file that
// holds no archive is refused with ErrCompressedImage, and a decompressor
// that fails (a zstd window above the limit opts set, a corrupt stream)
// fails Identify. Only the first bytes are read.
func Identify(path string, opts ...vma.DecompressOption) (*Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	src := &Source{Path: path, Size: st.Size(), Compression: vma.None}
	head, err := readHead(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c := codec.Detect(head)
	if c == vma.None {
		src.Format = plainFormat(head)
		return src, nil
	}
	archive, err := compressedArchive(f, opts)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s: %w", path, err)
	case !archive:
		return nil, fmt.Errorf("%s: %w", path, compressedImage{c})
	}
	src.Format, src.Compression = FormatVMA, c
	return src, nil
}

// readHead reads the first bytes of f, as many as there are up to what
// Detect needs.
func readHead(f *os.File) ([]byte, error) {
	head := make([]byte, max(codec.DetectLen, len(vma.Magic), len(qcow2.Magic)))
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return nil, err
	}
	return head[:n], nil
}

// plainFormat names the format of an uncompressed file by its magic.
func plainFormat(head []byte) string {
	switch {
	case hasPrefix(head, vma.Magic):
		return FormatVMA
	case hasPrefix(head, qcow2.Magic):
		return FormatQcow2
	}
	return FormatRaw
}

func hasPrefix(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == prefix
}

// compressedArchive decompresses the start of f and reports whether it
// begins an archive. The error is the decompressor's.
func compressedArchive(f *os.File, opts []vma.DecompressOption) (bool, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return false, err
	}
	dr, _, err := vma.Decompress(f, opts...)
	if err != nil {
		return false, err
	}
	defer dr.Close()
	head := make([]byte, len(vma.Magic))
	n, err := io.ReadFull(dr, head)
	if hasPrefix(head[:n], vma.Magic) {
		return true, nil
	}
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return false, err
	}
	return false, nil
}
