package qcow2_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// crafted is a qcow2 image made of headers alone: every cluster
// unallocated, the L1 table a hole of the file.
type crafted struct {
	clusterBits   uint32
	size          uint64 // virtual size
	l1Size        uint32 // entries
	backing       string // backing file name as stored; "" for none
	backingFormat string // "" for no backing format extension
}

// maxL1Entries is the largest L1 table qemu and this package accept: 32 MiB.
const maxL1Entries = 32 << 20 / 8

// huge claims the largest L1 table and the virtual size it maps: 128 GiB
// with 512-byte clusters, 2 PiB with 64 KiB ones.
func huge(clusterBits uint32, backing string) crafted {
	c := crafted{clusterBits: clusterBits, size: maxL1Entries << (2*clusterBits - 3), l1Size: maxL1Entries}
	if backing != "" {
		c.backing, c.backingFormat = backing, "qcow2"
	}
	return c
}

// nameOffset is where write puts the backing name: after the
// 104-byte header, the backing format extension and the end marker.
func (c crafted) nameOffset() int {
	off := 104 + 8
	if c.backingFormat != "" {
		off += 8 + (len(c.backingFormat)+7)&^7
	}
	return off
}

// write writes the image to path: header, backing format extension and
// name in cluster 0, refcount table in cluster 1, L1 table from cluster 2,
// covered by the file only as a hole. It takes a few KiB of disk.
func (c crafted) write(t testing.TB, path string) string {
	t.Helper()
	cluster := uint64(1) << c.clusterBits
	h := make([]byte, min(cluster, 4096))
	be.PutUint32(h, 0x514649fb)
	be.PutUint32(h[hVersion:], 3)
	be.PutUint32(h[hClusterBits:], c.clusterBits)
	be.PutUint64(h[hSize:], c.size)
	be.PutUint32(h[hL1Size:], c.l1Size)
	l1Off := 2 * cluster
	be.PutUint64(h[hL1Off:], l1Off)
	be.PutUint64(h[48:], cluster) // refcount table offset
	be.PutUint32(h[hRefClusters:], 1)
	be.PutUint32(h[hRefOrder:], 4)
	be.PutUint32(h[hHeaderLength:], 104)
	if c.backingFormat != "" {
		be.PutUint32(h[104:], 0xe2792aca)
		be.PutUint32(h[108:], uint32(len(c.backingFormat)))
		copy(h[112:], c.backingFormat)
	}
	end := c.nameOffset()
	if c.backing != "" {
		if end+len(c.backing) > len(h) {
			t.Fatalf("backing name %q does not fit in cluster 0", c.backing)
		}
		be.PutUint64(h[hBackingOff:], uint64(end))
		be.PutUint32(h[hBackingSize:], uint32(len(c.backing)))
		end += copy(h[end:], c.backing)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(h[:end]); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(l1Off + uint64(c.l1Size)*8)); err != nil {
		t.Fatal(err)
	}
	return path
}

// hugeChain writes top.qcow2 and depth backing files below it in dir, each
// claiming the largest L1 table, and returns top's path.
func hugeChain(t testing.TB, dir string, clusterBits uint32, depth int) string {
	t.Helper()
	name := func(i int) string { return fmt.Sprintf("c%02d.qcow2", i) }
	for i := 0; i <= depth; i++ {
		backing := ""
		if i < depth {
			backing = name(i + 1)
		}
		huge(clusterBits, backing).write(t, filepath.Join(dir, name(i)))
	}
	return filepath.Join(dir, name(0))
}

// TestCraftedByQemu checks that qemu-img reads the crafted images as they
// claim, so that the tests below test what they say.
func TestCraftedByQemu(t *testing.T) {
	qemuImg := requireTool(t, "qemu-img")
	top := hugeChain(t, t.TempDir(), 16, 2)
	out, err := exec.Command(qemuImg, "info", "--backing-chain", top).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img info: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), "virtual size: 2 PiB (2251799813685248 bytes)"); n != 3 {
		t.Errorf("qemu-img info shows %d images of 2 PiB, want 3:\n%s", n, out)
	}
}
