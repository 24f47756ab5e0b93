package vma_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/google/uuid"
	"github.com/vmatool/vmatool/vma"
)

func TestWithMaxHeaderSize(t *testing.T) {
	b, err := os.ReadFile(vectorDir + "/v01-single.vma")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vma.NewReader(bytes.NewReader(b), vma.WithMaxHeaderSize(100)); err == nil {
		t.Error("a limit below Proxmox's 512 KiB header must be refused")
	}
	if _, err := vma.NewReader(bytes.NewReader(b), vma.WithMaxHeaderSize(512<<10)); err != nil {
		t.Errorf("512 KiB limit: %v", err)
	}
	// A header claiming 1 MiB passes the default limit's check and fails
	// a 512 KiB one before anything is allocated for it.
	big := append([]byte(nil), b[:12288]...)
	big[56], big[57], big[58], big[59] = 0, 0x10, 0, 0
	_, err = vma.NewReader(bytes.NewReader(big), vma.WithMaxHeaderSize(512<<10))
	if !errors.Is(err, vma.ErrHeaderSize) {
		t.Errorf("1 MiB header under a 512 KiB limit: %v", err)
	}
	if _, err := vma.NewReader(bytes.NewReader(big)); !errors.Is(err, vma.ErrShortHeader) {
		t.Errorf("1 MiB header under the default limit should get as far as reading it: %v", err)
	}
}

// TestSkipDevice: a skipped device's clusters are read past, left out of
// the extents, and exempt from the completeness check.
func TestSkipDevice(t *testing.T) {
	b, err := os.ReadFile(vectorDir + "/v02-two-disks.vma")
	if err != nil {
		t.Fatal(err)
	}
	r, err := vma.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SkipDevice(9); !errors.Is(err, vma.ErrUnknownDevice) {
		t.Errorf("SkipDevice(9): %v", err)
	}
	if err := r.SkipDevice(1); err != nil {
		t.Fatal(err)
	}
	for {
		ext, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range ext.Clusters {
			if c.Device == 1 {
				t.Fatalf("cluster %d of the skipped device was returned", c.Index)
			}
		}
	}
	if r.StoredBytes(1) != 0 || r.StoredBytes(2) == 0 {
		t.Errorf("stored bytes: skipped %d, kept %d", r.StoredBytes(1), r.StoredBytes(2))
	}
	if err := r.SkipDevice(2); !errors.Is(err, vma.ErrOrder) {
		t.Errorf("SkipDevice after Next: %v", err)
	}
}

func TestWriterUUIDAndWritten(t *testing.T) {
	var out bytes.Buffer
	w, err := vma.NewWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	if w.UUID() == (uuid.UUID{}) || w.UUID().Version() != 4 {
		t.Errorf("default uuid %v is not a random (version 4) uuid", w.UUID())
	}
	w.AddConfig("qemu-server.conf", []byte("x"))
	id, _ := w.AddDevice("drive-scsi0", 3<<20)
	if w.Written() != 0 {
		t.Errorf("%d bytes written before any cluster", w.Written())
	}
	if err := w.WriteDisk(context.Background(), id, memDisk{bytes.Repeat([]byte{1}, 3<<20)}, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Written() != int64(out.Len()) {
		t.Errorf("Written() = %d, archive is %d bytes", w.Written(), out.Len())
	}
	r, err := vma.NewReader(&out)
	if err != nil || r.Header().UUID != w.UUID() {
		t.Errorf("header uuid %v, writer says %v (%v)", r.Header().UUID, w.UUID(), err)
	}
}
