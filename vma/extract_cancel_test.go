package vma

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
)

// Extract under a cancelled context writes nothing and never returns nil,
// however small the archive: a caller that cancelled may be about to
// remove the targets, and must not be told they are complete.
func TestExtractCancelled(t *testing.T) {
	b := namedArchive(t, []string{"qemu-server.conf"}, []string{"drive-scsi0"})
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tgt := &countingTarget{}
	if err := Extract(ctx, r, map[int]io.WriterAt{1: tgt}, WithWriteZeros()); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want %v", err, context.Canceled)
	}
	if tgt.n != 0 {
		t.Errorf("%d writes after cancellation", tgt.n)
	}
}

type countingTarget struct{ n int }

func (c *countingTarget) WriteAt(p []byte, off int64) (int, error) { c.n++; return len(p), nil }
