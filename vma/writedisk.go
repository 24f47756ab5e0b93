package vma

import (
	"context"
	"fmt"
	"io"

	"github.com/vmatool/vmatool/internal/budget"
	"github.com/vmatool/vmatool/internal/pipeline"
)

// Progress receives the number of bytes processed since its last call. It
// may be called from several goroutines at once.
type Progress interface {
	Update(n int64)
}

// WriteDisk writes every cluster of device id from disk, in order 0..n-1,
// as "vma create" does. If disk is a SparseDisk, ranges it reports as holes
// are never read. Reading and zero detection run on the writer's workers;
// extents are written in order.
//
// No cluster of the device may have been written before. p may be nil.
func (w *Writer) WriteDisk(ctx context.Context, id int, disk Disk, p Progress) error {
	d, err := w.device(id)
	if err != nil {
		return err
	}
	if disk.Size() != d.dev.Size {
		return fmt.Errorf("vma: device %s: disk size %d, registered size %d: %w", d.dev.Name, disk.Size(), d.dev.Size, ErrInvalidDevice)
	}
	if d.seen.count != 0 {
		return fmt.Errorf("vma: device %s: WriteDisk after WriteCluster: %w", d.dev.Name, ErrOrder)
	}
	if w.ext.n >= writerSlots {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if err := w.writeDisk(ctx, d, disk, p); err != nil {
		if w.err == nil {
			w.err = err
		}
		return err
	}
	return nil
}

// diskJob is a run of consecutive clusters that falls inside one extent of
// the output, so a worker can build the whole extent on its own.
type diskJob struct {
	first, count int
	// standalone jobs fill a whole extent that the pending one does not
	// touch: the worker seals the extent and it is written untouched.
	// Other jobs are merged into the pending extent.
	standalone bool
	ranges     [][2]int64 // data ranges, relative to the job's first byte
	ext        extentBuilder
	// holeExtents > 0 makes the job a run of that many whole extents of
	// holes, written as consecutive headers in holeBuf: a disk that is
	// mostly hole costs one job per run rather than one per extent.
	holeExtents int
	holeBuf     []byte
}

// holeRunExtents is the longest run of hole extents in one job (232 MiB of
// disk, 32 KiB of headers).
const holeRunExtents = 64

func (w *Writer) writeDisk(ctx context.Context, d *writerDevice, disk Disk, p Progress) error {
	total := int(d.clusters)
	pending := w.ext.n             // the deliverer changes w.ext; the producer must not read it later
	first := writerSlots - pending // clusters that complete the pending extent
	cursor := newDataCursor(disk, d.dev.Name)
	cb := clusterBuilder{uuid: w.opts.uuid, dev: d.dev, disk: disk}
	report := func(job *diskJob) {
		if p != nil {
			p.Update(min(int64(job.first+job.count)*ClusterSize, d.dev.Size) - int64(job.first)*ClusterSize)
		}
	}
	pipe := pipeline.NewOrdered(ctx, pipeline.Budgeted(budget.DiskJobs, maxExtentSize, w.opts.workers),
		func(_ context.Context, job *diskJob) error {
			if job.holeExtents > 0 {
				cb.buildHoles(job)
				report(job)
				return nil
			}
			if err := cb.build(job); err != nil {
				return err
			}
			report(job)
			return nil
		},
		func(job *diskJob) error { return w.emit(d, job) })

	for start, k := 0, 0; start < total; k++ {
		count := writerSlots
		if k == 0 {
			count = first
		}
		count = min(count, total-start)
		j, err := pipe.Next()
		if err != nil {
			break
		}
		job := &j.V
		job.first, job.count, job.holeExtents = start, count, 0
		// The last job stays pending: a later device may add to its
		// extent, and Close flushes it.
		last := start+count == total
		job.standalone = !last && count == writerSlots && (k > 0 || pending == 0)
		from := int64(start) * ClusterSize
		if job.standalone {
			// Whole extents before the next data and before the last
			// extent are written as one run of headers.
			full := min(holeRunExtents, (total-start-1)/writerSlots)
			next, err := cursor.nextData(from)
			if err != nil {
				pipe.Fail(err)
				break
			}
			if run := int(min(int64(full), (next-from)/(writerSlots*ClusterSize))); run > 0 {
				job.holeExtents, job.count = run, run*writerSlots
				pipe.Submit(j)
				start += job.count
				continue
			}
		}
		job.ranges, err = cursor.ranges(job.ranges[:0], from, min(from+int64(count)*ClusterSize, d.dev.Size))
		if err != nil {
			pipe.Fail(err)
			break
		}
		if len(job.ranges) == 0 {
			// All hole: nothing to read, so no worker round trip.
			cb.build(job)
			report(job)
			pipe.SubmitDone(j)
		} else {
			pipe.Submit(j)
		}
		start += count
	}
	return pipe.Close()
}

// emit writes a standalone job's extent as is, or appends the job's
// clusters to the pending extent.
func (w *Writer) emit(d *writerDevice, job *diskJob) error {
	if job.holeExtents > 0 {
		for i := 0; i < job.count; i++ {
			d.seen.add(uint32(job.first + i))
		}
		if err := w.writeHeader(); err != nil {
			return err
		}
		return w.write(job.holeBuf)
	}
	for i := 0; i < job.count; i++ {
		mask := job.ext.info[i].mask()
		d.seen.add(uint32(job.first + i))
		d.stored += int64(countBlocks(mask)) * BlockSize
		w.notify(d.dev.ID, uint32(job.first+i), mask)
	}
	if job.standalone {
		if w.ext.n >= writerSlots {
			if err := w.flush(); err != nil {
				return err
			}
		}
		if err := w.writeHeader(); err != nil {
			return err
		}
		return w.write(job.ext.buf[:job.ext.pos])
	}
	pos := extentHeaderSize
	for i := 0; i < job.count; i++ {
		if w.ext.n >= writerSlots {
			if err := w.flush(); err != nil {
				return err
			}
		}
		bi := job.ext.info[i]
		n := countBlocks(bi.mask()) * BlockSize
		w.ext.grow(w.ext.pos + n)
		w.ext.pos += copy(w.ext.buf[w.ext.pos:], job.ext.buf[pos:pos+n])
		pos += n
		w.ext.info[w.ext.n] = bi
		w.ext.n++
	}
	return nil
}

// clusterBuilder reads and classifies the clusters of jobs.
type clusterBuilder struct {
	uuid [16]byte
	dev  Device
	disk Disk
}

// buildHoles writes the headers of a run of extents that are all hole.
func (cb *clusterBuilder) buildHoles(job *diskJob) {
	n := job.holeExtents * extentHeaderSize
	if cap(job.holeBuf) < n {
		job.holeBuf = make([]byte, holeRunExtents*extentHeaderSize)
	}
	job.holeBuf = job.holeBuf[:n]
	h := extentHeader{uuid: cb.uuid}
	for e := range job.holeExtents {
		for i := range writerSlots {
			h.info[i] = makeBlockInfo(0, uint8(cb.dev.ID), uint32(job.first+e*writerSlots+i))
		}
		h.marshal(job.holeBuf[e*extentHeaderSize:])
	}
}

// build reads the job's data ranges into its buffer, one cluster per
// ClusterSize after the header space, and compacts the non-zero blocks in
// place.
func (cb *clusterBuilder) build(job *diskJob) error {
	e := &job.ext
	e.reset()
	if len(job.ranges) > 0 {
		e.grow(extentHeaderSize + job.count*ClusterSize)
	}
	start := int64(job.first) * ClusterSize
	for _, r := range job.ranges {
		if err := cb.readAt(e.buf[extentHeaderSize+r[0]:extentHeaderSize+r[1]], start+r[0]); err != nil {
			return err
		}
	}
	r := 0
	for i := 0; i < job.count; i++ {
		c := job.first + i
		base := int64(i) * ClusterSize
		holes := holeMask(job.ranges, &r, base)
		valid := int(min(cb.dev.Size-int64(c)*ClusterSize, ClusterSize))
		var src []byte
		if holes != allHoles {
			src = e.buf[extentHeaderSize+base : extentHeaderSize+base+ClusterSize]
		}
		e.addCluster(uint8(cb.dev.ID), uint32(c), src, valid, holes)
	}
	if job.standalone {
		e.seal(cb.uuid)
	}
	return nil
}

const allHoles = 1<<BlocksPerCluster - 1

// holeMask returns the blocks of the cluster at base (relative to the
// job) that lie outside every data range: holes, never read. *r is the
// first range that may still reach base; ranges are sorted, so a job's
// clusters advance it once. Whole clusters inside or outside a range are
// answered without looking at their blocks, which keeps a disk that is
// mostly hole at the speed of writing its extent headers.
func holeMask(ranges [][2]int64, r *int, base int64) uint16 {
	for *r < len(ranges) && ranges[*r][1] <= base {
		*r++
	}
	if *r == len(ranges) || ranges[*r][0] >= base+ClusterSize {
		return allHoles
	}
	if ranges[*r][0] <= base && ranges[*r][1] >= base+ClusterSize {
		return 0
	}
	holes := uint16(allHoles)
	k := *r
	for b := range BlocksPerCluster {
		rel := base + int64(b*BlockSize)
		for k < len(ranges) && ranges[k][1] <= rel {
			k++
		}
		if k < len(ranges) && rel >= ranges[k][0] {
			holes &^= 1 << b
		}
	}
	return holes
}

func (cb *clusterBuilder) readAt(b []byte, off int64) error {
	n, err := cb.disk.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		if off+int64(n) >= cb.dev.Size {
			clear(b[n:]) // the straddling block's tail past the device end
			return nil
		}
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("vma: device %s: reading %d bytes at offset %d: %w", cb.dev.Name, len(b), off+int64(n), err)
}
