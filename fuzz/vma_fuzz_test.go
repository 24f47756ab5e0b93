package fuzz

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/vmatool/vmatool/vma"
)

func addVMASeeds(f *testing.F) {
	addFileSeeds(f, "vectors/*.vma", 1, archiveSeedLimit)
	// A complete small archive from the Writer: two devices, one not
	// aligned to a cluster, data and zero blocks, and few data blocks, so
	// that it stays small.
	var out bytes.Buffer
	w, err := vma.NewWriter(&out, vma.WithWorkers(1))
	if err != nil {
		f.Fatal(err)
	}
	w.AddConfig("qemu-server.conf", []byte("memory: 1\n"))
	a, _ := w.AddDevice("drive-scsi0", 3*vma.ClusterSize+4096)
	b, _ := w.AddDevice("drive-efidisk0", 8192)
	disk := make([]byte, 3*vma.ClusterSize+4096)
	for _, off := range []int{0, 2*vma.ClusterSize + 5*vma.BlockSize, 3 * vma.ClusterSize} {
		copy(disk[off:off+vma.BlockSize], bytes.Repeat([]byte("vmatool!"), vma.BlockSize/8))
	}
	if err := w.WriteDisk(context.Background(), a, memDisk(disk), nil); err != nil {
		f.Fatal(err)
	}
	if err := w.WriteDisk(context.Background(), b, memDisk(disk[2*vma.ClusterSize+4*vma.BlockSize:2*vma.ClusterSize+6*vma.BlockSize]), nil); err != nil {
		f.Fatal(err)
	}
	if err := w.Close(); err != nil {
		f.Fatal(err)
	}
	f.Add(out.Bytes())
}

// fuzzMaxDisks bounds what one input may make a target do. The engine
// runs every new input hundreds of times while it minimises it, so an
// input that claims big devices must cost little: past this many device
// bytes, all devices together, a target materialises nothing (Extract
// targets, the rewrite) and only Verify runs, whose memory follows the
// input, not the sizes claimed. (A header that claims to be big costs
// what the input holds: the reader's buffer grows as bytes arrive.)
const fuzzMaxDisks = 1 << 20

func openFuzzArchive(data []byte) (*vma.Reader, error) {
	return vma.NewReader(bytes.NewReader(data))
}

// diskBytes sums what the header claims, saturating past fuzzMaxDisks.
func diskBytes(h *vma.Header) int64 {
	var n int64
	for _, d := range h.Devices {
		n += min(d.Size, fuzzMaxDisks+1)
	}
	return n
}

// FuzzVMAReader feeds arbitrary bytes to the streaming reader. It must
// never panic; Verify and Extract must refuse exactly the same archives,
// with the same error; an archive they accept must read the same through
// Next as through Extract, and survive a rewrite by the Writer.
func FuzzVMAReader(f *testing.F) {
	addVMASeeds(f)
	f.Fuzz(checkArchive)
}

// FuzzVMAChecksummed is FuzzVMAReader with the header and extent checksums
// recomputed first, so that mutations of names, sizes, pointers and slots
// get past them instead of all ending as checksum errors.
func FuzzVMAChecksummed(f *testing.F) {
	addVMASeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) { checkArchive(t, fixChecksums(data)) })
}

// fixChecksums returns a copy of data with the MD5 of the header and of
// every extent header it can find recomputed, as the format computes them
// (over the bytes with the checksum field zeroed).
func fixChecksums(data []byte) []byte {
	b := bytes.Clone(data)
	be := binary.BigEndian
	if len(b) < 12288 || string(b[:4]) != "VMA\x00" {
		return b
	}
	size := int(be.Uint32(b[56:]))
	if size < 12288 || size > len(b) {
		return b
	}
	clear(b[32:48])
	sum := md5.Sum(b[:size])
	copy(b[32:], sum[:])
	for off := size; off+512 <= len(b) && string(b[off:off+4]) == "VMAE"; {
		e := b[off : off+512]
		clear(e[24:40])
		sum := md5.Sum(e)
		copy(e[24:], sum[:])
		off += 512 + 4096*int(be.Uint16(e[6:]))
	}
	return b
}

// checkArchive is the body of the archive targets.
func checkArchive(t *testing.T, data []byte) {
	ctx := context.Background()
	r, err := openFuzzArchive(data)
	if err != nil {
		var fe *vma.FormatError
		if !errors.As(err, &fe) {
			t.Fatalf("header error %v is not a FormatError", err)
		}
		return
	}
	h := r.Header()
	_, verr := vma.Verify(ctx, r)
	if diskBytes(h) > fuzzMaxDisks {
		return
	}

	// Extract's view of the same bytes.
	r2, err := openFuzzArchive(data)
	if err != nil {
		t.Fatalf("second read of an accepted header failed: %v", err)
	}
	got := map[int]*target{}
	targets := map[int]io.WriterAt{}
	for _, d := range h.Devices {
		got[d.ID] = &target{b: make([]byte, d.Size)}
		targets[d.ID] = got[d.ID]
	}
	eerr := vma.Extract(ctx, r2, targets)
	if (verr == nil) != (eerr == nil) || (verr != nil && verr.Error() != eerr.Error()) {
		t.Fatalf("Verify and Extract disagree: %v / %v", verr, eerr)
	}
	if verr != nil {
		return
	}

	// The streaming view: apply clusters by hand.
	r3, _ := openFuzzArchive(data)
	manual := map[int][]byte{}
	for _, d := range h.Devices {
		manual[d.ID] = make([]byte, d.Size)
	}
	for {
		ext, err := r3.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Verify accepted the archive, Next refused it: %v", err)
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
	for id, b := range manual {
		if !bytes.Equal(b, got[id].b) {
			t.Fatalf("device %d: Next and Extract disagree", id)
		}
	}

	// Rewrite and compare.
	var out bytes.Buffer
	w, err := vma.NewWriter(&out, vma.WithUUID(h.UUID), vma.WithCtime(h.Ctime), vma.WithWorkers(1))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range h.Configs {
		// The names passed Verify, so the Writer, under the same
		// rules, must take them; only the header may outgrow the
		// limit, where configs shared one blob.
		if err := w.AddConfig(c.Name, c.Data); errors.Is(err, vma.ErrHeaderSize) {
			return
		} else if err != nil {
			t.Fatalf("the Writer refuses a config of a verified archive: %v", err)
		}
	}
	ids := map[int]int{}
	for _, d := range h.Devices {
		id, err := w.AddDevice(d.Name, d.Size)
		if err != nil {
			return // the VM state, sizes not a multiple of 512, names qmrestore cannot parse
		}
		ids[d.ID] = id
	}
	// Cluster by cluster: WriteDisk would set up its pipeline and
	// extent buffers for each device, several times the cost of the
	// rest of an execution.
	for _, d := range h.Devices {
		b := manual[d.ID]
		for c := int64(0); c < d.Clusters(); c++ {
			if err := w.WriteCluster(ids[d.ID], uint32(c), b[c*vma.ClusterSize:min(int64(len(b)), (c+1)*vma.ClusterSize)]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r4, err := vma.NewReader(&out)
	if err != nil {
		t.Fatalf("rewritten archive unreadable: %v", err)
	}
	if _, err := vma.Verify(ctx, r4); err != nil {
		t.Fatalf("rewritten archive does not verify: %v", err)
	}
}

type target struct{ b []byte }

func (t *target) WriteAt(p []byte, off int64) (int, error) { return copy(t.b[off:], p), nil }

type memDisk []byte

func (d memDisk) ReadAt(p []byte, off int64) (int, error) { return bytes.NewReader(d).ReadAt(p, off) }
func (d memDisk) Size() int64                             { return int64(len(d)) }
