//go:build !windows

package main

import (
	"fmt"
	"os"
	"syscall"
)

// renameOverEmpty renames the folder from over the empty folder to, which
// rename(2) allows and os.Rename refuses; a folder that is not empty makes
// it fail.
func renameOverEmpty(from, to string) error {
	if err := syscall.Rename(from, to); err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return nil
}

// syncDir makes the entries of the folder dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = syncFile(d)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("syncing folder %s: %w", dir, err)
	}
	return nil
}
