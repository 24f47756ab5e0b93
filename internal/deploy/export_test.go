package deploy

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmatool/vmatool/vma"
)

// SharedReads counts what the writers of shared archives read from the
// source image during a test.
type SharedReads struct {
	Writers atomic.Int64 // shared archives written
	Bytes   atomic.Int64 // bytes read from the image's disks

	mu   sync.Mutex
	bufs []*fanout
}

// Unspilled is what the targets read back from spill files.
func (c *SharedReads) Unspilled() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for _, f := range c.bufs {
		n += f.stats().unspilled
	}
	return n
}

// CountSharedReads wraps the disks of every shared archive written
// during t in counters, and shrinks the ring of each to budget bytes in
// chunks of chunk (0 keeps the default), so a small image overflows it.
func CountSharedReads(t testing.TB, budget, chunk int) *SharedReads {
	c := &SharedReads{}
	testHookShared = func(f *fanout, p *payload) {
		c.mu.Lock()
		c.bufs = append(c.bufs, f)
		c.mu.Unlock()
		c.Writers.Add(1)
		if p.pack == nil {
			return // an archive, copied as it is
		}
		for _, d := range p.pack.Devices {
			d.Disk = countDisk(d.Disk, &c.Bytes)
		}
	}
	saved := ringSize
	if budget > 0 {
		ringSize = [2]int{budget, chunk}
	}
	t.Cleanup(func() { testHookShared, ringSize = nil, saved })
	return c
}

// ShortenShareGrace makes the targets of a group wait for the others
// only d during t.
func ShortenShareGrace(t testing.TB, d time.Duration) {
	saved := shareGrace
	shareGrace = d
	t.Cleanup(func() { shareGrace = saved })
}

// countDisk counts the bytes read through d, keeping it sparse if it is.
func countDisk(d vma.Disk, n *atomic.Int64) vma.Disk {
	cd := countingDisk{d, n}
	if sd, ok := d.(vma.SparseDisk); ok {
		return countingSparseDisk{cd, sd}
	}
	return cd
}

type countingDisk struct {
	vma.Disk
	n *atomic.Int64
}

func (d countingDisk) ReadAt(p []byte, off int64) (int, error) {
	n, err := d.Disk.ReadAt(p, off)
	d.n.Add(int64(n))
	return n, err
}

type countingSparseDisk struct {
	countingDisk
	sd vma.SparseDisk
}

func (d countingSparseDisk) NextData(off int64) (int64, int64, error) { return d.sd.NextData(off) }
