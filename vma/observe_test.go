package vma_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/bits"
	"math/rand/v2"
	"testing"

	"github.com/vmatool/vmatool/vma"
)

// clusterLog records what an OnCluster hook sees.
type clusterLog []vma.Cluster

func (l *clusterLog) add(c vma.Cluster) {
	if c.Data != nil {
		panic("a hook got cluster data")
	}
	*l = append(*l, c)
}

// writeTwoDisks packs disks a and b (WriteDisk for a, WriteCluster in
// reverse for b) and returns the archive and the clusters the writer's
// hook saw.
func writeTwoDisks(t *testing.T, a, b []byte) ([]byte, clusterLog) {
	t.Helper()
	var out bytes.Buffer
	w, err := vma.NewWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddConfig("qemu-server.conf", []byte("memory: 1\n")); err != nil {
		t.Fatal(err)
	}
	ida, _ := w.AddDevice("drive-scsi0", int64(len(a)))
	idb, _ := w.AddDevice("drive-scsi1", int64(len(b)))
	var log clusterLog
	if err := w.OnCluster(log.add); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteDisk(context.Background(), ida, memDisk{a}, nil); err != nil {
		t.Fatal(err)
	}
	n := (len(b) + vma.ClusterSize - 1) / vma.ClusterSize
	for c := n - 1; c >= 0; c-- {
		if err := w.WriteCluster(idb, uint32(c), b[c*vma.ClusterSize:min(len(b), (c+1)*vma.ClusterSize)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.OnCluster(log.add); !errors.Is(err, vma.ErrWriteAfterClose) {
		t.Errorf("OnCluster after Close: %v", err)
	}
	return out.Bytes(), log
}

// The writer's hook sees every cluster once, in archive order, with the
// mask it stored; the reader's hook sees the same sequence, skipped
// devices included.
func TestOnCluster(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	a := randomDisk(rng, 200*vma.ClusterSize+8192, "mixed") // several extents, a partial last cluster
	b := randomDisk(rng, 5*vma.ClusterSize, "mixed")
	archive, wrote := writeTwoDisks(t, a, b)
	if want := 201 + 5; len(wrote) != want {
		t.Fatalf("writer hook saw %d clusters, want %d", len(wrote), want)
	}
	var storedA int
	for i, c := range wrote[:201] {
		if c.Device != 1 || c.Index != uint32(i) {
			t.Fatalf("writer hook %d: %+v", i, c)
		}
		storedA += bits.OnesCount16(c.Mask)
	}
	for i, c := range wrote[201:] {
		if c.Device != 2 || c.Index != uint32(4-i) {
			t.Fatalf("writer hook %d: %+v", 201+i, c)
		}
	}
	// The masks are the archive's: they count the stored blocks.
	r, err := vma.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	var read clusterLog
	if err := r.OnCluster(read.add); err != nil {
		t.Fatal(err)
	}
	st, err := vma.Verify(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if int64(storedA)*vma.BlockSize != st.Devices[0].StoredBytes {
		t.Errorf("writer hook masks hold %d blocks of disk a, the archive %d bytes", storedA, st.Devices[0].StoredBytes)
	}
	if len(read) != len(wrote) {
		t.Fatalf("reader hook saw %d clusters, writer %d", len(read), len(wrote))
	}
	for i := range read {
		if x, y := read[i], wrote[i]; x.Device != y.Device || x.Index != y.Index || x.Mask != y.Mask {
			t.Fatalf("cluster %d: read %+v, wrote %+v", i, read[i], wrote[i])
		}
	}
	if err := r.OnCluster(read.add); !errors.Is(err, vma.ErrOrder) {
		t.Errorf("OnCluster after reading: %v", err)
	}

	// Extract with a target for disk b only: the hook still sees disk a.
	r, _ = vma.NewReader(bytes.NewReader(archive))
	var partial clusterLog
	r.OnCluster(partial.add)
	tb := &memTarget{}
	if err := vma.Extract(context.Background(), r, map[int]io.WriterAt{2: tb}); err != nil {
		t.Fatal(err)
	}
	if len(partial) != len(wrote) {
		t.Errorf("with device a skipped the hook saw %d clusters, want %d", len(partial), len(wrote))
	}
	if !bytes.Equal(append(tb.b, make([]byte, len(b)-len(tb.b))...), b) {
		t.Error("disk b extracted wrong")
	}
}

// WriteZerosTo decides per device: zero blocks reach only the targets
// that asked for them.
func TestExtractWriteZerosTo(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	a := randomDisk(rng, 30*vma.ClusterSize, "mixed")
	b := randomDisk(rng, 30*vma.ClusterSize, "mixed")
	archive, _ := writeTwoDisks(t, a, b)
	garbage := func(n int) *memTarget { return &memTarget{b: bytes.Repeat([]byte{0xAA}, n)} }
	for _, tc := range []struct {
		name           string
		opts           []vma.ExtractOption
		zerosA, zerosB bool
	}{
		{"per device", []vma.ExtractOption{vma.WithWriteZerosTo(map[int]bool{1: true})}, true, false},
		{"overrides WriteZeros", []vma.ExtractOption{vma.WithWriteZeros(), vma.WithWriteZerosTo(map[int]bool{2: true})}, false, true},
		{"WriteZeros alone", []vma.ExtractOption{vma.WithWriteZeros()}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := vma.NewReader(bytes.NewReader(archive))
			if err != nil {
				t.Fatal(err)
			}
			ta, tb := garbage(len(a)), garbage(len(b))
			if err := vma.Extract(context.Background(), r, map[int]io.WriterAt{1: ta, 2: tb}, tc.opts...); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				name       string
				got, want  []byte
				wroteZeros bool
			}{{"a", ta.b, a, tc.zerosA}, {"b", tb.b, b, tc.zerosB}} {
				if bytes.Equal(c.got, c.want) != c.wroteZeros {
					t.Errorf("disk %s: equal to the source %v, want %v (zeros written over garbage only when asked)", c.name, !c.wroteZeros, c.wroteZeros)
				}
			}
		})
	}
}

// A device named vmstate is the VM state: the writer takes it, in order
// only, and the reader lists it as the VM state and extracts it whole.
func TestWriterVMState(t *testing.T) {
	state := randomDisk(rand.New(rand.NewPCG(3, 4)), 3*vma.ClusterSize+4096, "mixed")
	var out bytes.Buffer
	w, _ := vma.NewWriter(&out)
	w.AddConfig("qemu-server.conf", []byte("memory: 1\n"))
	id, err := w.AddDevice("vmstate", int64(len(state)))
	if err != nil {
		t.Fatalf("AddDevice vmstate: %v", err)
	}
	if _, err := w.AddDevice("vmstate", 4096); err == nil {
		t.Error("a second vmstate was accepted")
	}
	if err := w.WriteCluster(id, 1, state[vma.ClusterSize:2*vma.ClusterSize]); !errors.Is(err, vma.ErrVMStateOrder) {
		t.Errorf("vmstate cluster 1 first: %v, want ErrVMStateOrder", err)
	}
	for c := 0; c < 4; c++ {
		if err := w.WriteCluster(id, uint32(c), state[c*vma.ClusterSize:min(len(state), (c+1)*vma.ClusterSize)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := vma.NewReader(bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	d := r.Header().Devices[0]
	if !d.IsVMState() || d.FileName() != "vmstate.bin" || d.Size != int64(len(state)) {
		t.Fatalf("device %+v", d)
	}
	got := &memTarget{}
	if err := vma.Extract(context.Background(), r, map[int]io.WriterAt{id: got}, vma.WithWriteZeros()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.b, state) {
		t.Error("vmstate extracted wrong")
	}

	// WriteDisk writes it in order.
	out.Reset()
	w, _ = vma.NewWriter(&out)
	w.AddConfig("qemu-server.conf", nil)
	id, _ = w.AddDevice("vmstate", int64(len(state)))
	if err := w.WriteDisk(context.Background(), id, memDisk{state}, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, _ = vma.NewReader(bytes.NewReader(out.Bytes()))
	if _, err := vma.Verify(context.Background(), r); err != nil {
		t.Error(err)
	}
}
