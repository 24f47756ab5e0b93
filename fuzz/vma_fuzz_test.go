package fuzz

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/vmatool/vmatool/vma"
)

func addVMASeeds(f *testing.F) {
	addFileSeeds(f, "vectors/*.vma", 1)
	// Complete small archives from the Writer: two devices, one not
	// aligned to a cluster, data and zero blocks.
	var out bytes.Buffer
	w, err := vma.NewWriter(&out)
	if err != nil {
		f.Fatal(err)
	}
	w.AddConfig("qemu-server.conf", []byte("memory: 1\n"))
	a, _ := w.AddDevice("drive-scsi0", 3*vma.ClusterSize+4096)
	b, _ := w.AddDevice("drive-efidisk0", 8192)
	disk := bytes.Repeat([]byte("vmatool!"), (3*vma.ClusterSize+4096)/8)
	clear(disk[vma.ClusterSize : 2*vma.ClusterSize])
	if err := w.WriteDisk(context.Background(), a, memDisk(disk), nil); err != nil {
		f.Fatal(err)
	}
	if err := w.WriteDisk(context.Background(), b, memDisk(disk[:8192]), nil); err != nil {
		f.Fatal(err)
	}
	if err := w.Close(); err != nil {
		f.Fatal(err)
	}
	f.Add(out.Bytes())
}

// maxFuzzDevice keeps one input from asking Extract for gigabytes.
const maxFuzzDevice = 2 << 20

// FuzzVMAReader feeds arbitrary bytes to the streaming reader. It must
// never panic; an archive it accepts must extract the same bytes whether
// read extent by extent or through Extract, and must survive a rewrite by
// the Writer with identical contents.
func FuzzVMAReader(f *testing.F) {
	addVMASeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := vma.NewReader(bytes.NewReader(data))
		if err != nil {
			var fe *vma.FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("header error %v is not a FormatError", err)
			}
			return
		}
		h := r.Header()
		for _, d := range h.Devices {
			if d.Size > maxFuzzDevice || d.Size%512 != 0 || d.IsVMState() {
				return
			}
		}
		// Streaming view: apply clusters by hand.
		manual := map[int][]byte{}
		for _, d := range h.Devices {
			manual[d.ID] = make([]byte, d.Size)
		}
		for {
			ext, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return
			}
			for _, c := range ext.Clusters {
				for b := 0; b < vma.BlocksPerCluster; b++ {
					if blk := c.Block(b); blk != nil {
						off := int64(c.Index)*vma.ClusterSize + int64(b)*vma.BlockSize
						copy(manual[c.Device][off:], blk)
					}
				}
			}
		}
		// Extract view of the same bytes.
		r2, err := vma.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("second read of an accepted header failed: %v", err)
		}
		targets := map[int]io.WriterAt{}
		got := map[int]*target{}
		for _, d := range h.Devices {
			got[d.ID] = &target{b: make([]byte, d.Size)}
			targets[d.ID] = got[d.ID]
		}
		if err := vma.Extract(context.Background(), r2, targets, vma.ExtractOptions{}); err != nil {
			t.Fatalf("Next accepted the archive, Extract refused it: %v", err)
		}
		for id, b := range manual {
			if !bytes.Equal(b, got[id].b) {
				t.Fatalf("device %d: Next and Extract disagree", id)
			}
		}
		// Rewrite and compare.
		var out bytes.Buffer
		w, err := vma.NewWriter(&out, vma.WithUUID(h.UUID), vma.WithCtime(h.Ctime))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range h.Configs {
			if w.AddConfig(c.Name, c.Data) != nil {
				return // names the writer will not store (e.g. with '/')
			}
		}
		ids := map[int]int{}
		for _, d := range h.Devices {
			id, err := w.AddDevice(d.Name, d.Size)
			if err != nil {
				return
			}
			ids[d.ID] = id
		}
		for _, d := range h.Devices {
			if err := w.WriteDisk(context.Background(), ids[d.ID], memDisk(manual[d.ID]), nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		r3, err := vma.NewReader(&out)
		if err != nil {
			t.Fatalf("rewritten archive unreadable: %v", err)
		}
		if _, err := vma.Verify(context.Background(), r3); err != nil {
			t.Fatalf("rewritten archive does not verify: %v", err)
		}
	})
}

type target struct{ b []byte }

func (t *target) WriteAt(p []byte, off int64) (int, error) { return copy(t.b[off:], p), nil }

type memDisk []byte

func (d memDisk) ReadAt(p []byte, off int64) (int, error) { return bytes.NewReader(d).ReadAt(p, off) }
func (d memDisk) Size() int64                             { return int64(len(d)) }
