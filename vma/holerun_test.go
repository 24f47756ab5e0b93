package vma_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"testing"
	"time"

	"github.com/vmatool/vmatool/vma"
)

// spanDisk is a large sparse disk holding data only in a few spans; the
// rest reads as zeros and is reported as holes.
type spanDisk struct {
	size  int64
	spans [][2]int64 // sorted, disjoint
}

func (d *spanDisk) Size() int64 { return d.size }

func (d *spanDisk) byteAt(off int64) byte {
	for _, s := range d.spans {
		if off >= s[0] && off < s[1] {
			return byte(off*7 + off>>12 + 1)
		}
	}
	return 0
}

func (d *spanDisk) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for ; n < len(p) && off+int64(n) < d.size; n++ {
		p[n] = d.byteAt(off + int64(n))
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (d *spanDisk) NextData(off int64) (int64, int64, error) {
	for _, s := range d.spans {
		if s[1] > off {
			return max(s[0], off), s[1], nil
		}
	}
	return d.size, d.size, nil
}

// WriteDisk writes long runs of holes as runs of extent headers in one job:
// the archive must still be byte for byte what WriteCluster makes, cluster
// by cluster, as Proxmox's writer does, whichever runs the holes fall into.
func TestHoleRunsMatchWriteCluster(t *testing.T) {
	const mib = 1 << 20
	disk := &spanDisk{size: 1<<30 + 12288, spans: [][2]int64{
		{5 * mib, 5*mib + 100000},                    // inside the first run
		{300*mib + 4096, 301 * mib},                  // right after a 64-extent run
		{(1 << 30) - 3*mib, (1 << 30) + 12288 - 512}, // into the last extent
	}}
	build := func(byDisk bool) []byte {
		var out bytes.Buffer
		w, err := vma.NewWriter(&out, vma.WithUUID([16]byte{1, 2, 3}), vma.WithCtime(time.Unix(1700000000, 0)), vma.WithWorkers(2))
		if err != nil {
			t.Fatal(err)
		}
		w.AddConfig("qemu-server.conf", []byte("memory: 128\n"))
		id, err := w.AddDevice("drive-scsi0", disk.size)
		if err != nil {
			t.Fatal(err)
		}
		if byDisk {
			if err := w.WriteDisk(context.Background(), id, disk, nil); err != nil {
				t.Fatal(err)
			}
		} else {
			buf := make([]byte, vma.ClusterSize)
			for c := int64(0); c*vma.ClusterSize < disk.size; c++ {
				off := c * vma.ClusterSize
				next, _, _ := disk.NextData(off)
				var data []byte
				if next < off+vma.ClusterSize {
					n, _ := disk.ReadAt(buf, off)
					data = buf[:n]
				}
				if err := w.WriteCluster(id, uint32(c), data); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return out.Bytes()
	}
	byDisk, byCluster := build(true), build(false)
	if !bytes.Equal(byDisk, byCluster) {
		for i := range min(len(byDisk), len(byCluster)) {
			if byDisk[i] != byCluster[i] {
				t.Errorf("first difference at offset %d (extent %d, byte %d of it)", i, i/512, i%512)
				break
			}
		}
		t.Fatalf("WriteDisk gave %d bytes (sha256 %x), WriteCluster %d bytes (sha256 %x)",
			len(byDisk), sha256.Sum256(byDisk), len(byCluster), sha256.Sum256(byCluster))
	}
	if _, err := vma.NewReader(bytes.NewReader(byDisk)); err != nil {
		t.Fatal(err)
	}
}
