package vma

import (
	"context"
	"fmt"
	"io"
	"sync"
)

// Progress receives the number of bytes processed since its last call. It
// may be called from several goroutines at once.
type Progress interface {
	Update(n int64)
}

// WriteDisk writes every cluster of device id from disk, in order 0..n-1,
// as "vma create" does. If disk is a SparseDisk, ranges it reports as holes
// are never read. Reading and zero detection run on the writer's workers;
// extents are written in order from the calling goroutine.
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
	if w.extN >= writerSlots {
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
	// touch: the worker writes the extent header and the writer loop writes
	// buf[:n] untouched. Other jobs are merged into the pending extent.
	standalone bool
	ranges     [][2]int64 // data ranges, relative to the job's first byte
	buf        []byte
	n          int
	info       [writerSlots]blockInfo
	err        error
	done       chan struct{}
}

func (w *Writer) writeDisk(ctx context.Context, d *writerDevice, disk Disk, p Progress) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	workers := w.opts.workers
	// Buffers in flight: one per worker and one for the writer loop, so
	// reading, classifying and writing overlap. Memory is bounded by this
	// count (3.7 MiB each), never by the disk size.
	inFlight := workers + 1
	free := make(chan []byte, inFlight)
	for range inFlight {
		free <- nil // allocated on first use
	}
	todo := make(chan *diskJob, inFlight)
	ordered := make(chan *diskJob, inFlight)

	total := int(d.clusters)
	pending := w.extN              // the writer loop changes w.extN; this goroutine must not read it later
	first := writerSlots - pending // clusters that complete the pending extent
	cursor := newDataCursor(disk, d.dev.Name)
	holes := clusterWorker{w: w, dev: d.dev, disk: disk}
	report := func(job *diskJob) {
		if p != nil {
			p.Update(min(int64(job.first+job.count)*ClusterSize, d.dev.Size) - int64(job.first)*ClusterSize)
		}
	}
	var producerErr error
	go func() {
		defer close(todo)
		defer close(ordered)
		for start, k := 0, 0; start < total; k++ {
			count := writerSlots
			if k == 0 {
				count = first
			}
			count = min(count, total-start)
			job := &diskJob{first: start, count: count, done: make(chan struct{})}
			last := start+count == total
			// The last job stays pending: a later device may add to its
			// extent, and Close flushes it.
			job.standalone = !last && count == writerSlots && (k > 0 || pending == 0)
			var err error
			from := int64(start) * ClusterSize
			job.ranges, err = cursor.ranges(nil, from, min(from+int64(count)*ClusterSize, d.dev.Size))
			if err != nil {
				producerErr = err
				cancel()
				return
			}
			select {
			case job.buf = <-free:
			case <-ctx.Done():
				return
			}
			select {
			case ordered <- job:
			case <-ctx.Done():
				return
			}
			if len(job.ranges) == 0 {
				// All hole: nothing to read, so no worker round trip.
				holes.build(job)
				report(job)
				close(job.done)
			} else {
				todo <- job
			}
			start += count
		}
	}()

	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cw := clusterWorker{w: w, dev: d.dev, disk: disk}
			for job := range todo {
				if ctx.Err() == nil {
					if job.err = cw.build(job); job.err == nil {
						report(job)
					}
				} else {
					job.err = ctx.Err()
				}
				close(job.done)
			}
		}()
	}
	defer wg.Wait()

	for job := range ordered {
		<-job.done
		if job.err != nil {
			cancel()
			for range ordered { // let the producer finish
			}
			return job.err
		}
		if err := w.emit(d, job); err != nil {
			cancel()
			for range ordered {
			}
			return err
		}
		free <- job.buf
	}
	if producerErr != nil { // written before ordered was closed
		return producerErr
	}
	return ctx.Err()
}

// emit writes a standalone job's extent as is, or appends the job's
// clusters to the pending extent.
func (w *Writer) emit(d *writerDevice, job *diskJob) error {
	for i := 0; i < job.count; i++ {
		d.seen.add(uint32(job.first + i))
		d.stored += int64(countBlocks(job.info[i].mask())) * BlockSize
	}
	if job.standalone {
		if w.extN >= writerSlots {
			if err := w.flush(); err != nil {
				return err
			}
		}
		if err := w.writeHeader(); err != nil {
			return err
		}
		return w.write(job.buf[:job.n])
	}
	pos := extentHeaderSize
	for i := 0; i < job.count; i++ {
		if w.extN >= writerSlots {
			if err := w.flush(); err != nil {
				return err
			}
		}
		bi := job.info[i]
		n := countBlocks(bi.mask()) * BlockSize
		w.growExt(w.extPos + n)
		w.extPos += copy(w.ext[w.extPos:], job.buf[pos:pos+n])
		pos += n
		w.extInfo[w.extN] = bi
		w.extN++
	}
	return nil
}

// clusterWorker reads and classifies the clusters of jobs.
type clusterWorker struct {
	w    *Writer
	dev  Device
	disk Disk
}

// build fills job.buf with the job's stored blocks, compacted in slot and
// bit order after 512 bytes of header space.
func (cw *clusterWorker) build(job *diskJob) error {
	need := extentHeaderSize
	if len(job.ranges) > 0 {
		need += job.count * ClusterSize
	}
	if len(job.buf) < need {
		job.buf = make([]byte, need) // small disks and holes keep small buffers
	}
	start := int64(job.first) * ClusterSize
	for _, r := range job.ranges {
		if err := cw.readAt(job.buf[extentHeaderSize+r[0]:extentHeaderSize+r[1]], start+r[0]); err != nil {
			return err
		}
	}
	// Compact in place: a block only ever moves to a lower address.
	pos := extentHeaderSize
	r := 0
	blocks := 0
	for i := 0; i < job.count; i++ {
		var mask uint16
		for b := 0; b < BlocksPerCluster && r < len(job.ranges); b++ {
			rel := int64(i*ClusterSize + b*BlockSize)
			for r < len(job.ranges) && job.ranges[r][1] <= rel {
				r++
			}
			if r == len(job.ranges) || rel < job.ranges[r][0] {
				continue // a hole: zeros, never read
			}
			src := job.buf[extentHeaderSize+rel : extentHeaderSize+rel+BlockSize]
			if isZero(src) {
				continue
			}
			mask |= 1 << b
			pos += copy(job.buf[pos:], src)
			blocks++
		}
		job.info[i] = makeBlockInfo(mask, uint8(cw.dev.ID), uint32(job.first+i))
	}
	job.n = pos
	if job.standalone {
		h := extentHeader{blockCount: blocks, uuid: cw.w.opts.uuid}
		copy(h.info[:], job.info[:job.count])
		h.marshal(job.buf)
	}
	return nil
}

func (cw *clusterWorker) readAt(b []byte, off int64) error {
	n, err := cw.disk.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		if off+int64(n) >= cw.dev.Size {
			clear(b[n:]) // the straddling block's tail past the device end
			return nil
		}
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("vma: device %s: reading %d bytes at offset %d: %w", cw.dev.Name, len(b), off+int64(n), err)
}
