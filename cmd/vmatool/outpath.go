package main

// What an output name may be, checked before anything is written, so that
// a mistake in it ends with a message that says what to do rather than
// with a surprise: a folder that is not there, binary on a terminal, a
// compression its name does not say, a name qmrestore will not take.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/vmatool/vmatool/vma"
)

// errTerminal refuses to write an archive or a disk to a terminal, as
// zstd refuses: it would fill the screen with binary.
var errTerminal = usageError{"refusing to write an archive to a terminal; redirect it or use -o FILE"}

// errTerminalImage is errTerminal for a disk image (convert DST -).
var errTerminalImage = usageError{"refusing to write a disk image to a terminal; redirect it or give a file as DST"}

// noFolderError is an output whose folder does not exist. vmatool never
// creates the folder of a single output: a typo would otherwise leave
// folders behind.
type noFolderError struct{ dir string }

func (e *noFolderError) Error() string { return e.dir + ": no such folder (create it first)" }

// namesFolder reports whether an output name says it is a folder: it ends
// in a path separator, as "out/" does.
func namesFolder(name string) bool {
	return strings.HasSuffix(name, "/") || strings.HasSuffix(name, string(filepath.Separator))
}

// checkFolderArg checks an output name that ends in a separator: it must
// be an existing folder.
func checkFolderArg(name string) error {
	st, err := os.Stat(filepath.Clean(name))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &noFolderError{name}
	case err != nil:
		return err
	case !st.IsDir():
		return fmt.Errorf("%s: not a folder (the trailing %c says it should be one)", name, name[len(name)-1])
	}
	return nil
}

// checkParent checks that the folder a single output goes into exists.
func checkParent(path string) error {
	if namesFolder(path) {
		return checkFolderArg(path)
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &noFolderError{dir}
	case err != nil:
		return err
	case !st.IsDir():
		return fmt.Errorf("%s: not a folder, so %s cannot be written", dir, path)
	}
	return nil
}

// suffixCompression is the compression an archive name says: .zst zstd,
// .gz gzip, .lzo lzop, .bz2 bzip2, .vma none. ok is false for a name that says nothing (no
// suffix vmatool knows).
func suffixCompression(name string) (c vma.Compression, ok bool) {
	switch {
	case strings.HasSuffix(name, ".zst"):
		return vma.Zstd, true
	case strings.HasSuffix(name, ".gz"):
		return vma.Gzip, true
	case strings.HasSuffix(name, ".lzo"):
		return vma.Lzop, true
	case strings.HasSuffix(name, ".bz2"):
		return vma.Bzip2, true
	case strings.HasSuffix(name, ".vma"):
		return vma.None, true
	}
	return "", false
}

// checkCompressionName refuses a compression the output's name
// contradicts: zstd bytes in a .gz file read as garbage to everything
// that goes by the name, qmrestore included.
func checkCompressionName(flag string, c vma.Compression, name string) error {
	want, ok := suffixCompression(name)
	if !ok || want == c {
		return nil
	}
	fix := name
	for _, x := range []string{".zst", ".gz", ".lzo", ".bz2"} {
		fix = strings.TrimSuffix(fix, x)
	}
	fix += compressionSuffix(c)
	return usagef("the name %s says %s, but %s asks for %s: name the output %s, or leave out %s",
		name, describeCompression(want), flag, describeCompression(c), fix, flag)
}

// compressionSuffix is what an archive name ends in for c.
func compressionSuffix(c vma.Compression) string {
	switch c {
	case vma.Zstd:
		return ".zst"
	case vma.Gzip:
		return ".gz"
	}
	return ""
}

func describeCompression(c vma.Compression) string {
	if c == vma.None {
		return "uncompressed"
	}
	return string(c)
}

// qmrestoreName is the base name qmrestore accepts for a VMA archive:
// qemu-server's pattern (vzdump-(lxc|openvz|qemu)-.+\.(tgz|(tar|vma)
// (\.(gz|lzo|zst|bz2))?)) narrowed to what a VM's archive is.
var qmrestoreName = regexp.MustCompile(`^vzdump-qemu-.+\.vma(\.(gz|lzo|zst|bz2))?$`)

// restoreNameWarning is a warning for an archive name qmrestore will
// refuse, or "" for a name it takes.
func restoreNameWarning(path string) string {
	base := filepath.Base(path)
	if qmrestoreName.MatchString(base) {
		return ""
	}
	return fmt.Sprintf("qmrestore refuses %s: it takes only names like vzdump-qemu-<VMID>-<anything>.vma[.zst|.gz]; rename it before restoring, or give -o a folder for a vzdump name", base)
}

// looksLikeArchive reports whether name is named like an archive.
func looksLikeArchive(name string) bool { return hasSuffix(name, archiveSuffixes...) }

// tempNames maps the temporary paths of outputs under way to the names
// they become, so that an error met while writing one names the output
// the user asked for, not a .vmatool-* name that is gone when the error
// is read.
var tempNames = struct {
	sync.Mutex
	m map[string]string
}{m: map[string]string{}}

func rememberTemp(tmp, final string) {
	tempNames.Lock()
	tempNames.m[tmp] = final
	tempNames.Unlock()
}

// hideTempNames replaces every temporary path in msg by the output it
// stands for; the longest first, so a staging folder's files become files
// of the target folder.
func hideTempNames(msg string) string {
	tempNames.Lock()
	defer tempNames.Unlock()
	if !strings.Contains(msg, tempPrefix) {
		return msg
	}
	tmps := make([]string, 0, len(tempNames.m))
	for t := range tempNames.m {
		tmps = append(tmps, t)
	}
	sort.Slice(tmps, func(i, j int) bool { return len(tmps[i]) > len(tmps[j]) })
	for _, t := range tmps {
		msg = strings.ReplaceAll(msg, t, tempNames.m[t])
	}
	return msg
}
