package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	"github.com/vmatool/vmatool/internal/remote"
	"github.com/vmatool/vmatool/vma"
)

// This file holds what the paths that send an archive over SSH share.

// produce runs the archive writer into a pipe for a consumer, or hands
// out the target's share of an archive written for several; wait closes
// the reader and returns the writer's error.
func (j *job) produce(ctx context.Context, c vma.Compression) (r io.Reader, wait func() error) {
	if j.share != nil {
		if r, wait, ok := j.share.join(ctx, j, c); ok {
			return r, wait
		}
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := j.pl.writeArchive(ctx, pw, c, j.t.Level, j)
		pw.CloseWithError(err)
		done <- err
	}()
	return pr, func() error { pr.Close(); return <-done }
}

// uploadArchive streams the archive over SSH into dir/name: under
// name.part, renamed only once complete, so a failure leaves nothing.
func (j *job) uploadArchive(ctx context.Context, dir, name string, c vma.Compression) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, wait := j.produce(ctx, c)
	err := j.ssh.Upload(ctx, pr, dir, name, j.setSent)
	if err != nil {
		cancel()
	}
	if perr := wait(); err == nil && perr != nil {
		err = perr
	}
	j.progress(true)
	if err != nil {
		return fmt.Errorf("uploading %s: %w", path.Join(dir, name), err)
	}
	return nil
}

// qmrestoreArgs is the qmrestore command for archive (a path, or "-" for
// standard input). It never passes --start: a start that fails there is
// only a warning in a restore that succeeds (qemu-server
// src/PVE/API2/Qemu.pm), so the start is a step of its own.
func qmrestoreArgs(t *Target, archive string) []string {
	args := []string{"qmrestore", archive, strconv.Itoa(t.VMID), "--storage", t.Storage}
	if t.Force {
		args = append(args, "--force", "1")
	}
	if t.Unique {
		args = append(args, "--unique", "1")
	}
	return args
}

// qmrestoreOutcome sorts a qmrestore failure: refused before it wrote the
// VM's config (the ID exists, the VM is locked, the archive is missing;
// qemu-server src/PVE/API2/Qemu.pm checks these before it locks the new
// config) or failed after, which leaves the config behind.
func (j *job) qmrestoreOutcome(err error) error {
	var ee *remote.ExitError
	if !errors.As(err, &ee) {
		// The connection dropped or the run was cancelled: whether the
		// config was written is unknown, so undo looks.
		j.created()
		return err
	}
	switch {
	case strings.Contains(ee.Stderr, "already exists"):
		return j.refusedAsExisting(err)
	case strings.Contains(ee.Stderr, "is locked"), strings.Contains(ee.Stderr, "can't find file"):
		return err
	}
	j.created()
	return err
}
