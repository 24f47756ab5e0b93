package qcow2_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"

	"github.com/vmatool/vmatool/qcow2"
)

// chunk is a piece of a chunkDisk: data at a virtual offset.
type chunk struct {
	off  int64
	data []byte
}

func (c chunk) end() int64 { return c.off + int64(len(c.data)) }

// chunkDisk is a sparse disk of any size held as its data chunks (sorted,
// not overlapping); the rest reads as zeros. It is a source for WriteFrom
// with a Size and an allocation map, like raw.Disk and *qcow2.Image, and
// the expected content of the image.
type chunkDisk struct {
	size   int64
	chunks []chunk
}

func (d *chunkDisk) Size() int64 { return d.size }

func (d *chunkDisk) ReadAt(p []byte, off int64) (int, error) {
	if off >= d.size {
		return 0, io.EOF
	}
	var eof error
	if int64(len(p)) > d.size-off {
		p, eof = p[:d.size-off], io.EOF
	}
	clear(p)
	end := off + int64(len(p))
	i := sort.Search(len(d.chunks), func(i int) bool { return d.chunks[i].end() > off })
	for ; i < len(d.chunks) && d.chunks[i].off < end; i++ {
		c := d.chunks[i]
		s, e := max(c.off, off), min(c.end(), end)
		copy(p[s-off:e-off], c.data[s-c.off:e-c.off])
	}
	return len(p), eof
}

// NextData reports the chunks, adjacent ones merged.
func (d *chunkDisk) NextData(off int64) (int64, int64, error) {
	i := sort.Search(len(d.chunks), func(i int) bool { return d.chunks[i].end() > off })
	if i == len(d.chunks) {
		return d.size, d.size, nil
	}
	s, e := max(d.chunks[i].off, off), d.chunks[i].end()
	for i++; i < len(d.chunks) && d.chunks[i].off == e; i++ {
		e = d.chunks[i].end()
	}
	return s, e, nil
}

// add puts data at off; chunks must be added in order.
func (d *chunkDisk) add(off int64, data []byte) {
	if n := len(d.chunks); n > 0 && d.chunks[n-1].end() > off {
		panic(fmt.Sprintf("chunk at %d overlaps the one before", off))
	}
	d.chunks = append(d.chunks, chunk{off, data})
}

// clusters returns the clusters of size cs that hold chunks, in order.
func (d *chunkDisk) clusters(cs int64) []int64 {
	var out []int64
	for _, c := range d.chunks {
		for k := c.off / cs; k*cs < c.end(); k++ {
			if len(out) == 0 || out[len(out)-1] < k {
				out = append(out, k)
			}
		}
	}
	return out
}

// writeRaw writes the disk as a sparse raw file, for qemu-img compare.
func (d *chunkDisk) writeRaw(t testing.TB, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(d.size); err != nil {
		t.Fatal(err)
	}
	for _, c := range d.chunks {
		if _, err := f.WriteAt(c.data, c.off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// verifyImage opens the image with the package's reader and checks that
// it reads as want: every chunk, and every range the reader says may hold
// data; the rest is unallocated, so zeros. It returns the reader's
// allocation map.
func verifyImage(t testing.TB, path string, want *chunkDisk, wantSize int64) []qcow2.Extent {
	t.Helper()
	img, err := qcow2.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.Size() != wantSize {
		t.Fatalf("image size %d, want %d", img.Size(), wantSize)
	}
	same := func(off, n int64, what string) {
		got := make([]byte, n)
		exp := make([]byte, n)
		if _, err := img.ReadAt(got, off); err != nil && err != io.EOF {
			t.Fatalf("ReadAt(%d, %d): %v", n, off, err)
		}
		want.ReadAt(exp, off)
		if !bytes.Equal(got, exp) {
			i := 0
			for got[i] == exp[i] {
				i++
			}
			t.Fatalf("%s [%d, %d): byte at %d is %#x, want %#x", what, off, off+n, off+int64(i), got[i], exp[i])
		}
	}
	for _, c := range want.chunks {
		same(c.off, int64(len(c.data)), "chunk")
	}
	for off := int64(0); off < img.Size(); {
		s, e, err := img.NextData(off)
		if err != nil {
			t.Fatal(err)
		}
		if s == e {
			break
		}
		for p := s; p < e; p += 4 << 20 {
			same(p, min(e-p, 4<<20), "data range")
		}
		off = e
	}
	ext, err := img.Extents(0, img.Size())
	if err != nil {
		t.Fatal(err)
	}
	return ext
}

// checkStructure is "qemu-img check" in Go, so that the tests check
// refcounts without qemu: it counts the references to every host cluster
// (header, L1, L2 tables, data, refcount table and blocks) and compares
// them with the refcount blocks, and checks the flags and alignment of
// every entry. Every cluster of the file must be in use.
func checkStructure(t testing.TB, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	be := binary.BigEndian
	if len(b) < 512 || be.Uint32(b) != 0x514649fb || be.Uint32(b[4:]) != 3 {
		t.Fatalf("not a version 3 qcow2 image")
	}
	cbits := be.Uint32(b[20:])
	cs := int64(1) << cbits
	if int64(len(b))%cs != 0 {
		t.Errorf("file size %d is not a multiple of the cluster size %d", len(b), cs)
	}
	if got := be.Uint32(b[96:]); got != 4 {
		t.Fatalf("refcount_order %d", got)
	}
	if got := be.Uint32(b[100:]); got != 112 {
		t.Errorf("header_length %d", got)
	}
	incompat := be.Uint64(b[72:])
	if ct := b[104]; (ct == 1) != (incompat == 8) || ct > 1 || incompat&^8 != 0 {
		t.Errorf("compression type %d with incompatible features %#x", ct, incompat)
	}
	nclusters := (int64(len(b)) + cs - 1) / cs
	refs := make([]int, nclusters)
	ref := func(off, n int64, what string) {
		if off+n > int64(len(b)) {
			t.Fatalf("%s at [%d, %d) past the end of the file (%d)", what, off, off+n, len(b))
		}
		for c := off / cs; c <= (off+n-1)/cs; c++ {
			refs[c]++
		}
	}
	ref(0, cs, "header")
	size := be.Uint64(b[24:])
	l1Size := int64(be.Uint32(b[36:]))
	l1Off := int64(be.Uint64(b[40:]))
	l2Entries := cs / 8
	if need := (int64(size) + cs*l2Entries - 1) / (cs * l2Entries); l1Size != need {
		t.Errorf("l1_size %d, want %d", l1Size, need)
	}
	if l1Size > 0 {
		if l1Off%cs != 0 {
			t.Fatalf("L1 offset %#x unaligned", l1Off)
		}
		ref(l1Off, l1Size*8, "L1 table")
	}
	x := 70 - cbits
	for i := range l1Size {
		e := be.Uint64(b[l1Off+8*i:])
		if e == 0 {
			continue
		}
		l2 := int64(e & 0x00fffffffffffe00)
		if e&^0x00fffffffffffe00 != 1<<63 || l2%cs != 0 {
			t.Fatalf("L1 entry %d = %#x: want an aligned offset with COPIED", i, e)
		}
		ref(l2, cs, "L2 table")
		for j := range l2Entries {
			e := be.Uint64(b[l2+8*j:])
			vc := i*l2Entries + j
			switch {
			case e == 0, e == 1:
			case e&(1<<62) != 0:
				if e&(1<<63) != 0 {
					t.Fatalf("cluster %d: compressed entry %#x with COPIED", vc, e)
				}
				coff := int64(e & (1<<x - 1))
				sectors := int64(e>>x) & (1<<(cbits-8) - 1)
				ref(coff, (sectors+1)*512-coff&511, "compressed cluster")
			default:
				host := int64(e & 0x00fffffffffffe00)
				if e&^0x00fffffffffffe00 != 1<<63 || host%cs != 0 {
					t.Fatalf("cluster %d: entry %#x: want an aligned offset with COPIED", vc, e)
				}
				if vc*cs >= int64(size) {
					t.Fatalf("cluster %d mapped past the virtual size %d", vc, size)
				}
				ref(host, cs, "data cluster")
			}
		}
	}
	rtOff := int64(be.Uint64(b[48:]))
	rtClusters := int64(be.Uint32(b[56:]))
	if rtOff%cs != 0 || rtClusters == 0 {
		t.Fatalf("refcount table at %#x, %d clusters", rtOff, rtClusters)
	}
	ref(rtOff, rtClusters*cs, "refcount table")
	perBlock := cs / 2
	stored := make([]int, nclusters)
	for i := range rtClusters * cs / 8 {
		e := int64(be.Uint64(b[rtOff+8*i:]))
		if e == 0 {
			continue
		}
		if e%cs != 0 {
			t.Fatalf("refcount table entry %d = %#x unaligned", i, e)
		}
		ref(e, cs, "refcount block")
		for j := range perBlock {
			c := i*perBlock + j
			v := int(be.Uint16(b[e+2*j:]))
			if c < nclusters {
				stored[c] = v
			} else if v != 0 {
				t.Fatalf("refcount %d for cluster %d past the end of the file", v, c)
			}
		}
	}
	for c := range nclusters {
		if refs[c] == 0 {
			t.Errorf("host cluster %d (offset %#x) is not used", c, c*cs)
		}
		if refs[c] != stored[c] {
			t.Fatalf("host cluster %d (offset %#x): %d references, refcount %d", c, c*cs, refs[c], stored[c])
		}
	}
}

// qemuCheck runs "qemu-img check", which exits 0 only for an image with no
// errors and no leaks.
func qemuCheck(t testing.TB, path string) {
	t.Helper()
	out, err := exec.Command("qemu-img", "check", path).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img check %s: %v\n%s", filepath.Base(path), err, out)
	}
}

// qemuCompare runs "qemu-img compare" of the raw disk and the image.
func qemuCompare(t testing.TB, rawPath, path string) {
	t.Helper()
	out, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "qcow2", rawPath, path).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img compare: %v\n%s", err, out)
	}
}

// haveQemu reports whether qemu-img is installed; with
// VMATOOL_REQUIRE_TOOLS=1 its absence fails the test.
func haveQemu(t testing.TB) bool {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err == nil {
		return true
	}
	if os.Getenv("VMATOOL_REQUIRE_TOOLS") == "1" {
		t.Fatal("qemu-img not found and VMATOOL_REQUIRE_TOOLS=1: install it (Debian: apt-get install qemu-utils)")
	}
	return false
}

// progressSum adds up what a Writer reports, checking it comes in order
// from one goroutine at a time.
type progressSum struct {
	total int64
	busy  bool
}

func (p *progressSum) Update(n int64) {
	if p.busy {
		panic("Progress called concurrently")
	}
	p.busy = true
	if n <= 0 {
		panic(fmt.Sprintf("Progress.Update(%d)", n))
	}
	p.total += n
	p.busy = false
}
