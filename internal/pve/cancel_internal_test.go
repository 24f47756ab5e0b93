package pve

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// TestCancelReader: go-proxmox's UploadReader takes no context, so the
// body itself must fail once the upload's context is done, also while its
// source blocks.
func TestCancelReader(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 20000)
	var sent int64
	r := &cancelReader{ctx: context.Background(), r: bytes.NewReader(data), progress: func(n int64) { sent = n }}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) || sent != int64(len(data)) {
		t.Fatalf("ReadAll: %d bytes, %v, sent %d", len(got), err, sent)
	}

	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	r = &cancelReader{ctx: ctx, r: pr}
	go pw.Write([]byte("abcd"))
	p := make([]byte, 10)
	if n, err := r.Read(p); n != 4 || err != nil {
		t.Fatalf("Read = %d, %v", n, err)
	}
	done := make(chan error, 1)
	go func() { _, err := r.Read(p); done <- err }()
	time.Sleep(20 * time.Millisecond) // the source now blocks
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Read after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read blocked after cancel")
	}
}
