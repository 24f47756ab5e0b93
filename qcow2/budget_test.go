package qcow2_test

import (
	"bytes"
	"testing"

	"github.com/vmatool/vmatool/qcow2"
)

// TestNextDataBoundedSearch maps 1 TiB with one L2 table of zero clusters
// repeated 2048 times: 16 Mi entries to look at. NextData must not scan
// them all in one call; it answers with conservative ranges (zeros that
// "may" be data) and still reaches the end in a few calls.
func TestNextDataBoundedSearch(t *testing.T) {
	b := fixtureBytes(t, "v3-64k.qcow2")
	const cluster = 65536
	zeroTable := len(b)
	b = append(b, make([]byte, cluster)...)
	for i := 0; i < cluster/8; i++ {
		be.PutUint64(b[zeroTable+8*i:], 1) // ZERO_PLAIN
	}
	const size, l1Entries = 1 << 40, 2048 // each L1 entry maps 512 MiB
	be.PutUint64(b[hSize:], size)
	be.PutUint32(b[hL1Size:], l1Entries)
	l1 := int(be.Uint64(b[hL1Off:]))
	for i := 0; i < l1Entries; i++ {
		be.PutUint64(b[l1+8*i:], uint64(zeroTable))
	}
	img, err := qcow2.New(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	walkToEnd(t, img, size, cluster)

	// The same image as the backing file of an empty 1 TiB overlay: the
	// overlay's search must stop where its backing file's does.
	top := fixtureBytes(t, "v3-64k.qcow2")
	be.PutUint64(top[hSize:], size)
	be.PutUint32(top[hL1Size:], l1Entries)
	clear(top[l1 : l1+8*l1Entries])
	be.PutUint64(top[hBackingOff:], 1024)
	be.PutUint32(top[hBackingSize:], 4)
	copy(top[1024:], "base")
	overlay, err := qcow2.New(bytes.NewReader(top), qcow2.WithBackingOpener(func(parent, name string) (*qcow2.BackingFile, error) {
		return &qcow2.BackingFile{ReaderAt: bytes.NewReader(b), Size: int64(len(b)), Name: name}, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer overlay.Close()
	walkToEnd(t, overlay, size, cluster)
}

// walkToEnd follows NextData from 0 to the end of img, checking that each
// range is at most a cluster of zeros and that few calls get there.
func walkToEnd(t *testing.T, img *qcow2.Image, size, cluster int64) {
	t.Helper()
	calls := 0
	buf := make([]byte, cluster)
	for off := int64(0); ; calls++ {
		s, e, err := img.NextData(off)
		if err != nil {
			t.Fatal(err)
		}
		if s == e {
			if s != size {
				t.Fatalf("NextData ended at %d, want %d", s, size)
			}
			break
		}
		if s < off || e-s > cluster {
			t.Fatalf("NextData(%d) = [%d, %d)", off, s, e)
		}
		if _, err := img.ReadAt(buf[:e-s], s); err != nil || !isZero(buf[:e-s]) {
			t.Fatalf("ReadAt(%d) = %v, or non-zero", s, err)
		}
		off = e
	}
	if calls < 2 || calls > 40 {
		t.Errorf("%d NextData calls to cross 1 TiB of zero clusters", calls)
	}
}
