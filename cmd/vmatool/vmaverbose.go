package main

// The -v output of create, extract and verify is Proxmox's "vma -v"
// output, line for line, because qmrestore logs it and scripts parse it.
// The figures follow vma's own definitions (vma.c, vma-reader.c), which
// are not always the obvious ones: the reader counts whole 64 KiB clusters
// as read, and the writer counts the blocks past a device's end as zeros.

import (
	"fmt"
	"github.com/vmatool/vmatool/internal/recipe"
	"io"
	"math/bits"
	"sync"
	"time"

	"github.com/vmatool/vmatool/vma"
)

// readStats counts what vma's reader counts while it restores or verifies
// with -v, and prints its progress and summary lines.
type readStats struct {
	mu  sync.Mutex
	w   io.Writer // nil once stopped
	now func() time.Time

	start int64 // Unix seconds when the extents began: vma's durations are differences of time(2)
	// limit is, per dev_id, where the device's whole sectors end: vma
	// counts zero blocks only up to there. The VM state has no limit.
	limit [256]int64
	// total is the clusters the percentage counts against: the floor of
	// size/64 KiB summed over the devices vma registers, so it can pass
	// 100% on the last, partial cluster of each device.
	total       int64
	read        int64 // clusters read, of every device, extracted or not
	zero        int64 // bytes of zero blocks in clusters that are not full
	partialZero int64 // the part of zero in clusters that store some data
	percent     int64
}

// newReadStats prepares the counters for the devices of h. vma's verify
// registers every device, the VM state included, in the total; its
// extract registers the disks only (the VM state goes to a file beside
// them), whether they are extracted or skipped.
func newReadStats(w io.Writer, now func() time.Time, h *vma.Header, verify bool) *readStats {
	st := &readStats{w: w, now: now}
	for _, d := range h.Devices {
		st.limit[d.ID] = d.Size / 512 * 512
		if d.IsVMState() {
			st.limit[d.ID] = -1
		}
		if verify || !d.IsVMState() {
			st.total += d.Size / vma.ClusterSize
		}
	}
	return st
}

// attach makes r report its clusters here, and starts the clock.
func (st *readStats) attach(r *vma.Reader) error {
	st.start = st.now().Unix()
	return r.OnCluster(st.cluster)
}

// cluster counts one cluster entry, as restore_extent does.
func (st *readStats) cluster(c vma.Cluster) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.read++
	// With every device under 64 KiB the total is 0 and vma dies dividing
	// by it; without a percentage there is just no progress line.
	if st.w != nil && st.total > 0 {
		if p := st.read * 100 / st.total; p != st.percent {
			st.percent = p
			fmt.Fprintf(st.w, "progress %d%% (read %d bytes, duration %d sec)\n", p, st.read*vma.ClusterSize, st.now().Unix()-st.start)
		}
	}
	if c.Mask == 0xffff {
		return
	}
	base := int64(c.Index) * vma.ClusterSize
	limit := st.limit[c.Device]
	for b := 0; b < vma.BlocksPerCluster; b++ {
		if c.Mask&(1<<b) != 0 {
			continue
		}
		start := base + int64(b)*vma.BlockSize
		end := start + vma.BlockSize
		if limit >= 0 {
			end = min(end, limit)
		}
		if end > start {
			st.zero += end - start
			if c.Mask != 0 {
				st.partialZero += end - start
			}
		}
	}
}

// stop ends the progress lines: after a failure the goroutine that decodes
// the stream may still be finishing an extent.
func (st *readStats) stop() {
	st.mu.Lock()
	st.w = nil
	st.mu.Unlock()
}

// summary prints vma's closing lines, for a restore or verify that
// succeeded.
func (st *readStats) summary() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.w == nil {
		return
	}
	if st.read == 0 {
		fmt.Fprintln(st.w, "vma archive contains no image data")
		return
	}
	read := st.read * vma.ClusterSize
	fmt.Fprintf(st.w, "total bytes read %d, sparse bytes %d (%.3g%%)\n", read, st.zero, 100*float64(st.zero)/float64(read))
	// vma leaves this line out when no data was stored ("does not make
	// sense for empty files").
	if data := read - st.zero; data != 0 {
		fmt.Fprintf(st.w, "space reduction due to 4K zero blocks %.3g%%\n", 100*float64(st.partialZero)/float64(data))
	}
}

// writeStats counts what vma's writer counts for "vma create -v", and
// prints its lines: progress whenever the whole percentage changes, then
// one line per image.
type writeStats struct {
	mu   sync.Mutex
	w    io.Writer
	devs []vma.Device
	byID map[int]int // index in devs

	total       int64 // the devices' sizes
	transferred int64 // bytes of the devices covered, the VM state by whole clusters
	zero        int64
	zeros       []int64 // per device: 4 KiB blocks not stored, past the end included
	percent     int64
	started     bool
}

func newWriteStats(w io.Writer, devs []vma.Device) *writeStats {
	st := &writeStats{w: w, devs: devs, byID: map[int]int{}, zeros: make([]int64, len(devs))}
	for i, d := range devs {
		st.byID[d.ID] = i
		st.total += d.Size
	}
	return st
}

// cluster counts one cluster as vma_writer_write does.
func (st *writeStats) cluster(c vma.Cluster) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.started {
		// vma prints the state before the first cluster too; an archive
		// without devices has no clusters, and vma prints nothing for it.
		st.started = true
		fmt.Fprintf(st.w, "progress 0%% 0/%d 0\n", st.total)
	}
	i := st.byID[c.Device]
	d := st.devs[i]
	n := int64(vma.ClusterSize)
	if !d.IsVMState() {
		n = min(n, d.Size-int64(c.Index)*vma.ClusterSize)
	}
	z := int64(vma.BlocksPerCluster-bits.OnesCount16(c.Mask)) * vma.BlockSize
	st.transferred += n
	st.zero += z
	st.zeros[i] += z
	if p := st.transferred * 100 / st.total; p != st.percent {
		st.percent = p
		fmt.Fprintf(st.w, "progress %d%% %d/%d %d\n", p, st.transferred, st.total, st.zero)
	}
}

// images prints vma's line per device. Its "saved" is the size less the
// zeros, not the bytes the archive stores: the blocks past the end of a
// device that is not 64 KiB-aligned count as zeros, so "saved" falls short
// of what is stored by that padding.
func (st *writeStats) images() {
	st.mu.Lock()
	defer st.mu.Unlock()
	for i, d := range st.devs {
		fmt.Fprintf(st.w, "image %s: size=%d zeros=%d saved=%d\n", d.Name, d.Size, st.zeros[i], d.Size-st.zeros[i])
	}
}

// watchCreate makes the archive being packed report its clusters to a new
// writeStats.
func watchCreate(w io.Writer, pack *recipe.Pack) (*writeStats, error) {
	devs := make([]vma.Device, len(pack.Devices))
	for i, d := range pack.Devices {
		devs[i] = vma.Device{ID: d.ID, Name: d.Name, Size: d.Disk.Size()}
	}
	st := newWriteStats(w, devs)
	return st, pack.OnCluster(st.cluster)
}
