//go:build windows

package main

import (
	"os"
	"syscall"
)

// renameOverEmpty puts the folder from in the place of the empty folder
// to. Windows renames no folder over another, so the placeholder is
// removed first (which fails if it is not empty) and from renamed without
// replacing anything. Between the two, another process could take the
// name; the rename then fails and the commit is undone, as on Unix when
// the placeholder is not empty.
func renameOverEmpty(from, to string) error {
	if err := os.Remove(to); err != nil {
		return err
	}
	// syscall.Rename is MoveFile, which never replaces; os.Rename would.
	if err := syscall.Rename(from, to); err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return nil
}

// syncDir does nothing: Windows cannot flush a folder (FlushFileBuffers
// on a folder handle is refused), and NTFS journals the renames that
// commit outputs, each of whose files was flushed before its move.
func syncDir(dir string) error { return nil }
