package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// partial outputs still under their temporary names, removed on failure or
// on a second chance after an interrupt (main's watchdog).
var partials = struct {
	sync.Mutex
	paths map[string]bool
}{paths: map[string]bool{}}

func removePartialOutputs() {
	partials.Lock()
	defer partials.Unlock()
	for p := range partials.paths {
		os.Remove(p)
	}
	clear(partials.paths)
}

// outFile is an output written under a temporary name in its final
// directory and renamed into place only by Commit, so a reader never sees a
// partial file and a failure leaves nothing behind.
type outFile struct {
	*os.File
	final string
	tmp   string
	force bool
	done  bool
}

// errExists is returned when an output exists and --force was not given.
var errExists = errors.New("already exists (use --force to overwrite)")

// createOutput creates a temporary file beside final. tmpName, if set, is
// the temporary base name to use (Proxmox's extract uses tmp-disk-*.raw).
func createOutput(final, tmpName string, force bool) (*outFile, error) {
	if !force {
		if _, err := os.Lstat(final); err == nil {
			return nil, fmt.Errorf("%s: %w", final, errExists)
		}
	}
	dir := filepath.Dir(final)
	if tmpName == "" {
		var r [6]byte
		_, _ = rand.Read(r[:])
		tmpName = "." + tempStem(filepath.Base(final)) + ".tmp-" + hex.EncodeToString(r[:])
	}
	tmp := filepath.Join(dir, tmpName)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	partials.Lock()
	partials.paths[tmp] = true
	partials.Unlock()
	return &outFile{File: f, final: final, tmp: tmp, force: force}, nil
}

// Commit makes the data durable and moves it to its final name. Without
// force it links rather than renames, so a file that appeared meanwhile is
// still never overwritten.
func (o *outFile) Commit() error {
	if o.done {
		return nil
	}
	if err := o.File.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		o.Abort()
		return fmt.Errorf("%s: %w", o.final, err)
	}
	if err := o.File.Close(); err != nil {
		o.Abort()
		return fmt.Errorf("%s: %w", o.final, err)
	}
	var err error
	if o.force {
		err = os.Rename(o.tmp, o.final)
	} else if err = os.Link(o.tmp, o.final); err == nil {
		err = os.Remove(o.tmp)
	} else if errors.Is(err, fs.ErrExist) {
		err = fmt.Errorf("%s: %w", o.final, errExists)
	} else if _, serr := os.Lstat(o.final); errors.Is(serr, fs.ErrNotExist) {
		err = os.Rename(o.tmp, o.final) // filesystems without hard links
	}
	if err != nil {
		o.Abort()
		return err
	}
	o.forget()
	return nil
}

// Abort removes the temporary file. It is safe after Commit.
func (o *outFile) Abort() {
	if o.done {
		return
	}
	o.File.Close()
	os.Remove(o.tmp)
	o.forget()
}

func (o *outFile) forget() {
	o.done = true
	partials.Lock()
	delete(partials.paths, o.tmp)
	partials.Unlock()
}

// outGroup commits several outputs together, or none of them.
type outGroup struct{ files []*outFile }

func (g *outGroup) create(final, tmpName string, force bool) (*outFile, error) {
	f, err := createOutput(final, tmpName, force)
	if err == nil {
		g.files = append(g.files, f)
	}
	return f, err
}

func (g *outGroup) commit() error {
	for i, f := range g.files {
		if err := f.Commit(); err != nil {
			for _, rest := range g.files[i+1:] {
				rest.Abort()
			}
			return err
		}
	}
	return nil
}

func (g *outGroup) abort() {
	for _, f := range g.files {
		f.Abort()
	}
}
