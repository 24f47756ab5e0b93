package vma_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/vmatool/vmatool/vma"
)

// randomDisk makes a disk whose 4 KiB blocks are, at random, zero, random
// or a repeated byte, with runs of whole zero clusters.
func randomDisk(rng *rand.Rand, size int64, kind string) []byte {
	b := make([]byte, size)
	switch kind {
	case "zero":
		return b
	case "data":
		for i := range b {
			b[i] = byte(rng.IntN(255) + 1)
		}
		return b
	}
	for off := int64(0); off < size; off += vma.BlockSize {
		end := min(off+vma.BlockSize, size)
		switch rng.IntN(4) {
		case 0: // zero
		case 1:
			for i := off; i < end; i++ {
				b[i] = byte(rng.Uint32())
			}
		case 2:
			for i := off; i < end; i++ {
				b[i] = 'x'
			}
		case 3:
			b[off+int64(rng.IntN(int(end-off)))] = 1 // one byte makes the block data
		}
	}
	return b
}

// holeyDisk is a SparseDisk that reports every other 256 KiB as a hole and
// fails the test if a hole is read.
type holeyDisk struct {
	b     []byte
	t     *testing.T
	reads int
}

const holeSpan = 256 << 10

func (d *holeyDisk) Size() int64 { return int64(len(d.b)) }
func (d *holeyDisk) ReadAt(p []byte, off int64) (int, error) {
	for o := off; o < off+int64(len(p)) && o < d.Size(); o += vma.BlockSize {
		if (o/holeSpan)%2 == 1 {
			d.t.Errorf("read of hole at offset %d", o)
			break
		}
	}
	return bytes.NewReader(d.b).ReadAt(p, off)
}
func (d *holeyDisk) NextData(off int64) (int64, int64, error) {
	size := d.Size()
	for off < size {
		if (off/holeSpan)%2 == 0 {
			return off, min((off/holeSpan+1)*holeSpan, size), nil
		}
		off = (off/holeSpan + 1) * holeSpan
	}
	return size, size, nil
}

func unpackAll(t *testing.T, archive []byte) (*vma.Header, map[string][]byte) {
	t.Helper()
	r, err := vma.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	targets := map[int]io.WriterAt{}
	mem := map[string]*memTarget{}
	for _, d := range r.Header().Devices {
		mem[d.Name] = &memTarget{b: make([]byte, d.Size)}
		targets[d.ID] = mem[d.Name]
	}
	if err := vma.Extract(context.Background(), r, targets); err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for n, m := range mem {
		out[n] = m.b
	}
	return r.Header(), out
}

func TestRoundTripRandomDisks(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int64{512, 4096, 65536, 65536 + 512, 139264, 540672, 3*65536 + 1536, 58 * 65536, 58*65536 + 4096, 117 * 65536, 200*65536 + 3584}
	for n := 0; n < 24; n++ {
		ndev := 1 + rng.IntN(3)
		kinds := []string{"mixed", "zero", "data"}
		var disks [][]byte
		var desc string
		for i := 0; i < ndev; i++ {
			size := sizes[rng.IntN(len(sizes))]
			kind := kinds[rng.IntN(len(kinds))]
			disks = append(disks, randomDisk(rng, size, kind))
			desc += fmt.Sprintf("%s-%d,", kind, size)
		}
		t.Run(desc, func(t *testing.T) {
			id := uuid.New()
			ctime := time.Unix(1700000000+int64(n), 0)
			build := func(write func(w *vma.Writer)) []byte {
				var out bytes.Buffer
				w, err := vma.NewWriter(&out, vma.WithUUID(id), vma.WithCtime(ctime), vma.WithWorkers(1+n%3))
				if err != nil {
					t.Fatal(err)
				}
				w.AddConfig("qemu-server.conf", []byte("memory: 1\n"))
				for i, d := range disks {
					if _, err := w.AddDevice(fmt.Sprintf("drive-scsi%d", i), int64(len(d))); err != nil {
						t.Fatal(err)
					}
				}
				write(w)
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				return out.Bytes()
			}
			byDisk := build(func(w *vma.Writer) {
				for i, d := range disks {
					if err := w.WriteDisk(context.Background(), i+1, memDisk{d}, nil); err != nil {
						t.Fatal(err)
					}
				}
			})
			inOrder := build(func(w *vma.Writer) {
				for i, d := range disks {
					for c := 0; c*vma.ClusterSize < len(d); c++ {
						w.WriteCluster(i+1, uint32(c), d[c*vma.ClusterSize:min((c+1)*vma.ClusterSize, len(d))])
					}
				}
			})
			if !bytes.Equal(byDisk, inOrder) {
				t.Fatal("WriteDisk and in-order WriteCluster disagree")
			}
			// Shuffled and interleaved, as a live backup writes.
			type job struct{ dev, c int }
			var jobs []job
			for i, d := range disks {
				for c := 0; c*vma.ClusterSize < len(d); c++ {
					jobs = append(jobs, job{i, c})
				}
			}
			rng.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
			shuffled := build(func(w *vma.Writer) {
				for _, j := range jobs {
					d := disks[j.dev]
					if err := w.WriteCluster(j.dev+1, uint32(j.c), d[j.c*vma.ClusterSize:min((j.c+1)*vma.ClusterSize, len(d))]); err != nil {
						t.Fatal(err)
					}
				}
			})
			for name, archive := range map[string][]byte{"by disk": byDisk, "shuffled": shuffled} {
				h, got := unpackAll(t, archive)
				if h.UUID != id || !h.Ctime.Equal(ctime) {
					t.Errorf("%s: header %v %v", name, h.UUID, h.Ctime)
				}
				for i, d := range disks {
					if !bytes.Equal(got[fmt.Sprintf("drive-scsi%d", i)], d) {
						t.Errorf("%s: disk %d differs after the round trip", name, i)
					}
				}
			}
		})
	}
}

func TestHolesAreNeverRead(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	size := int64(10<<20 + 4096)
	b := randomDisk(rng, size, "data")
	for off := int64(0); off < size; off += holeSpan {
		if (off/holeSpan)%2 == 1 {
			clear(b[off:min(off+holeSpan, size)])
		}
	}
	d := &holeyDisk{b: b, t: t}
	var out bytes.Buffer
	w, _ := vma.NewWriter(&out)
	w.AddConfig("qemu-server.conf", nil)
	w.AddDevice("drive-scsi0", size)
	if err := w.WriteDisk(context.Background(), 1, d, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, got := unpackAll(t, out.Bytes()); !bytes.Equal(got["drive-scsi0"], b) {
		t.Fatal("sparse disk differs after the round trip")
	}
}

func TestWriterErrors(t *testing.T) {
	newW := func() *vma.Writer {
		w, err := vma.NewWriter(io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	t.Run("missing cluster", func(t *testing.T) {
		w := newW()
		w.AddDevice("drive-scsi0", 3*vma.ClusterSize)
		w.WriteCluster(1, 0, nil)
		w.WriteCluster(1, 2, nil)
		if err := w.Close(); !errors.Is(err, vma.ErrMissingCluster) {
			t.Fatalf("got %v", err)
		}
		if err := w.Close(); !errors.Is(err, vma.ErrMissingCluster) {
			t.Fatalf("second Close: %v", err)
		}
	})
	t.Run("duplicate cluster", func(t *testing.T) {
		w := newW()
		w.AddDevice("drive-scsi0", vma.ClusterSize)
		w.WriteCluster(1, 0, nil)
		if err := w.WriteCluster(1, 0, nil); !errors.Is(err, vma.ErrDuplicateCluster) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("cluster past the end", func(t *testing.T) {
		w := newW()
		w.AddDevice("drive-scsi0", vma.ClusterSize)
		if err := w.WriteCluster(1, 1, nil); !errors.Is(err, vma.ErrClusterOutOfRange) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("config after data", func(t *testing.T) {
		w := newW()
		w.AddDevice("drive-scsi0", vma.ClusterSize)
		w.WriteCluster(1, 0, nil)
		if err := w.AddConfig("x", nil); !errors.Is(err, vma.ErrOrder) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("write after close", func(t *testing.T) {
		w := newW()
		w.AddConfig("x", nil)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := w.WriteCluster(1, 0, nil); !errors.Is(err, vma.ErrWriteAfterClose) {
			t.Fatalf("got %v", err)
		}
	})
	for _, tc := range []struct {
		name string
		size int64
	}{{"zero size", 0}, {"size not a multiple of 512", 1000}, {"negative", -512}} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := newW().AddDevice("drive-scsi0", tc.size); !errors.Is(err, vma.ErrInvalidDevice) {
				t.Fatalf("got %v", err)
			}
		})
	}
	// "vmstate" is the VM state, not a disk: TestWriterVMState.
	for _, name := range []string{"", "a b", "a/b", "a,b", "a=b", "a:b", "x\x00"} {
		t.Run("device name "+name, func(t *testing.T) {
			if _, err := newW().AddDevice(name, 512); !errors.Is(err, vma.ErrInvalidDevice) {
				t.Fatalf("got %v", err)
			}
		})
	}
	t.Run("duplicate device", func(t *testing.T) {
		w := newW()
		w.AddDevice("drive-scsi0", 512)
		if _, err := w.AddDevice("drive-scsi0", 512); !errors.Is(err, vma.ErrInvalidDevice) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("255 devices", func(t *testing.T) {
		w := newW()
		for i := 0; i < 254; i++ { // the dev_ids Proxmox hands out
			if _, err := w.AddDevice(fmt.Sprintf("d%d", i), 512); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := w.AddDevice("one-more", 512); !errors.Is(err, vma.ErrInvalidDevice) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("oversized config", func(t *testing.T) {
		if err := newW().AddConfig("big", make([]byte, 65536)); !errors.Is(err, vma.ErrInvalidConfig) {
			t.Fatalf("got %v", err)
		}
		if err := newW().AddConfig("max", make([]byte, 65535)); err != nil {
			t.Fatalf("65535 bytes must fit: %v", err)
		}
	})
	t.Run("header over 512 KiB", func(t *testing.T) {
		w := newW()
		var err error
		for i := 0; i < 9 && err == nil; i++ {
			err = w.AddConfig(fmt.Sprintf("c%d", i), make([]byte, 60000))
		}
		if !errors.Is(err, vma.ErrHeaderSize) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestCancelledWriteDisk(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w, _ := vma.NewWriter(io.Discard)
	w.AddDevice("drive-scsi0", 64<<20)
	if err := w.WriteDisk(ctx, 1, memDisk{make([]byte, 64<<20)}, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

// TestTruncationEverywhere cuts a valid archive at every 512-byte boundary
// and a few odd places: each cut must give an error, never a clean end.
func TestTruncationEverywhere(t *testing.T) {
	b, err := readFile(vectorDir + "/v02-two-disks.vma")
	if err != nil {
		t.Fatal(err)
	}
	for cut := 0; cut < len(b); cut += 512 {
		for _, c := range []int{cut, cut + 1, cut + 511} {
			if c >= len(b) {
				continue
			}
			r, err := vma.NewReader(bytes.NewReader(b[:c]))
			if err == nil {
				_, err = vma.Verify(context.Background(), r)
			}
			if err == nil {
				t.Fatalf("archive cut at %d passed", c)
			}
			var fe *vma.FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("cut at %d: %v is not a FormatError", c, err)
			}
			if !errors.Is(err, vma.ErrShortHeader) && !errors.Is(err, vma.ErrShortExtent) && !errors.Is(err, vma.ErrMissingCluster) {
				t.Fatalf("cut at %d: unexpected kind %v", c, err)
			}
		}
	}
}

type countingProgress struct {
	mu sync.Mutex
	n  int64
}

func (c *countingProgress) Update(n int64) { c.mu.Lock(); c.n += n; c.mu.Unlock() }

// TestProgressCountsEveryByte: holes included, progress ends at the disk
// size exactly.
func TestProgressCountsEveryByte(t *testing.T) {
	size := int64(10<<20 + 4096)
	d := &holeyDisk{b: make([]byte, size), t: t}
	var p countingProgress
	w, _ := vma.NewWriter(io.Discard)
	w.AddDevice("drive-scsi0", size)
	if err := w.WriteDisk(context.Background(), 1, d, &p); err != nil {
		t.Fatal(err)
	}
	if p.n != size {
		t.Errorf("progress reported %d bytes, disk has %d", p.n, size)
	}
}
