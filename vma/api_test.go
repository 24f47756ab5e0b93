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

// TestHeaderSizeLimit: a header claiming 1 MiB, more than Proxmox writes,
// is read as far as the stream goes; one claiming more than the reader's
// 4 MiB bound is refused before anything is allocated for it.
func TestHeaderSizeLimit(t *testing.T) {
	b, err := os.ReadFile(vectorDir + "/v01-single.vma")
	if err != nil {
		t.Fatal(err)
	}
	big := append([]byte(nil), b[:12288]...)
	big[56], big[57], big[58], big[59] = 0, 0x10, 0, 0 // 1 MiB
	if _, err := vma.NewReader(bytes.NewReader(big)); !errors.Is(err, vma.ErrShortHeader) {
		t.Errorf("1 MiB header should get as far as reading it: %v", err)
	}
	big[56], big[57] = 0, 0x50 // 5 MiB
	if _, err := vma.NewReader(bytes.NewReader(big)); !errors.Is(err, vma.ErrHeaderSize) {
		t.Errorf("5 MiB header: %v, want ErrHeaderSize", err)
	}
}

// TestExtractOneDevice: a device without a target is read past, left
// unwritten and exempt from the completeness check, while the other one
// comes out whole.
func TestExtractOneDevice(t *testing.T) {
	var want []entry
	for _, v := range loadManifest(t) {
		if v.File == "v02-two-disks.vma" {
			want = v.Devices
		}
	}
	b, err := os.ReadFile(vectorDir + "/v02-two-disks.vma")
	if err != nil {
		t.Fatal(err)
	}
	for _, keep := range want {
		r, err := vma.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		targets := map[int]io.WriterAt{}
		out := map[int]*memTarget{}
		for _, d := range r.Header().Devices {
			if d.Name == keep.Name {
				out[d.ID] = &memTarget{b: make([]byte, d.Size)}
				targets[d.ID] = out[d.ID]
			}
		}
		if len(targets) != 1 {
			t.Fatalf("no device %s", keep.Name)
		}
		if err := vma.Extract(context.Background(), r, targets); err != nil {
			t.Fatal(err)
		}
		for _, o := range out {
			if got := sha(o.b); got != keep.SHA256 {
				t.Errorf("%s: sha256 %s, want %s", keep.Name, got, keep.SHA256)
			}
		}
	}
}

// TestWriterDefaultUUID: without WithUUID every archive gets its own
// random (version 4) uuid, and nothing is written before the first extent
// is complete.
func TestWriterDefaultUUID(t *testing.T) {
	var ids []uuid.UUID
	for range 2 {
		var out bytes.Buffer
		w, err := vma.NewWriter(&out)
		if err != nil {
			t.Fatal(err)
		}
		w.AddConfig("qemu-server.conf", []byte("x"))
		id, _ := w.AddDevice("drive-scsi0", 3<<20)
		if out.Len() != 0 {
			t.Errorf("%d bytes written before any cluster", out.Len())
		}
		if err := w.WriteDisk(context.Background(), id, memDisk{bytes.Repeat([]byte{1}, 3<<20)}, nil); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		r, err := vma.NewReader(&out)
		if err != nil {
			t.Fatal(err)
		}
		if v := r.Header().UUID.Version(); v != 4 {
			t.Errorf("default uuid %v is not a random (version 4) uuid", r.Header().UUID)
		}
		ids = append(ids, r.Header().UUID)
	}
	if ids[0] == ids[1] {
		t.Errorf("two archives share uuid %v", ids[0])
	}
}
