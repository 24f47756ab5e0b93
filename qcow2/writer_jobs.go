package qcow2

import (
	"context"
	"fmt"
	"io"

	"github.com/vmatool/vmatool/internal/pipeline"
)

// How a job's cluster is stored.
const (
	storeZero       = iota // reads as zeros: not stored
	storeData              // stored as it is
	storeCompressed        // stored compressed
)

// clusterOut is how one cluster of a job is stored; a compressed one's
// bytes are out[off:off+n] of its job.
type clusterOut struct {
	how    uint8
	off, n int32
}

// clusterJob is a run of consecutive clusters on its way through the
// pipeline. Its buffers stay with it when it is recycled.
type clusterJob struct {
	start int64 // virtual offset of the first cluster
	n     int   // clusters
	bytes int64 // bytes of the virtual disk it accounts for, for Progress
	// hole marks a run of clusters known to be zeros, never read: only
	// their L2 entries change, if anything.
	hole bool
	// src, when set, is read into buf: the byte ranges, relative to
	// start, that may hold data. The rest of buf is zeros.
	src    io.ReaderAt
	ranges [][2]int64

	buf  []byte
	out  []byte
	outs []clusterOut
	aw   appendWriter
}

// reset prepares j for n clusters from virtual offset start.
func (j *clusterJob) reset(start int64, n int, bytes int64) {
	j.start, j.n, j.bytes = start, n, bytes
	j.hole, j.src = false, nil
	j.ranges = j.ranges[:0]
}

// input returns the job's input buffer, n bytes.
func (j *clusterJob) input(n int) []byte {
	if cap(j.buf) < n {
		j.buf = make([]byte, n)
	}
	j.buf = j.buf[:n]
	return j.buf
}

// newPipeline starts the workers and the deliverer of a batch of writes.
func (w *Writer) newPipeline(ctx context.Context, p Progress) *pipeline.Ordered[clusterJob] {
	if ctx == nil {
		ctx = context.Background()
	}
	return pipeline.NewOrdered(ctx, pipeline.Config{Workers: w.workers, InFlight: w.inFlight},
		w.work,
		func(j *clusterJob) error {
			if err := w.deliver(j); err != nil {
				return err
			}
			if p != nil && j.bytes > 0 {
				p.Update(j.bytes)
			}
			return nil
		})
}

// work reads a job's clusters if they come from a source, and decides how
// each is stored, compressing it if that is wanted and worth it.
func (w *Writer) work(_ context.Context, j *clusterJob) error {
	if j.hole {
		return nil
	}
	cs := int(w.cs)
	if j.src != nil {
		if err := w.read(j); err != nil {
			return err
		}
	}
	if cap(j.outs) < j.n {
		j.outs = make([]clusterOut, j.n)
	}
	j.outs = j.outs[:j.n]
	if w.compress && cap(j.out) < j.n*cs+cs {
		// Room for every cluster at its worst (uncompressed, plus the
		// frame overhead) before it is found not to shrink.
		j.out = make([]byte, 0, j.n*cs+cs)
	}
	j.out = j.out[:0]
	for i := range j.n {
		c := j.buf[i*cs : (i+1)*cs]
		switch {
		case allZero(c):
			j.outs[i] = clusterOut{how: storeZero}
		case w.compress:
			off := len(j.out)
			out, err := w.codec.compress(j.out, c, &j.aw)
			if err != nil {
				return err
			}
			// As qemu: stored compressed only if that saves at least
			// a byte; nothing but the cluster size bounds a
			// compressed cluster in the L2 entry.
			if n := len(out) - off; n < cs {
				j.out = out
				j.outs[i] = clusterOut{how: storeCompressed, off: int32(off), n: int32(n)}
			} else {
				j.out = out[:off]
				j.outs[i] = clusterOut{how: storeData}
			}
		default:
			j.outs[i] = clusterOut{how: storeData}
		}
	}
	return nil
}

// read fills the job's buffer from its source: its data ranges, and zeros
// around them.
func (w *Writer) read(j *clusterJob) error {
	buf := j.input(j.n << w.cbits)
	prev := int64(0)
	for _, r := range j.ranges {
		clear(buf[prev:r[0]])
		b := buf[r[0]:r[1]]
		off := j.start + r[0]
		n, err := j.src.ReadAt(b, off)
		if n < len(b) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("qcow2: reading %d bytes at offset %d of the source: %w", len(b), off+int64(n), err)
		}
		prev = r[1]
	}
	clear(buf[prev:])
	return nil
}

// deliver stores a job's clusters at the end of the file, in job order,
// and maps them.
func (w *Writer) deliver(j *clusterJob) error {
	first := j.start >> w.cbits
	if j.hole {
		return w.setZero(first, int64(j.n))
	}
	cs := int(w.cs)
	x := 70 - w.cbits // where the sector count of a compressed entry starts
	for i := 0; i < j.n; {
		switch o := j.outs[i]; o.how {
		case storeZero:
			e := i + 1
			for e < j.n && j.outs[e].how == storeZero {
				e++
			}
			if err := w.setZero(first+int64(i), int64(e-i)); err != nil {
				return err
			}
			i = e
		case storeData:
			// Consecutive data clusters go to the file in one piece.
			e := i + 1
			for e < j.n && j.outs[e].how == storeData {
				e++
			}
			off, err := w.space.add(j.buf[i*cs : e*cs])
			if err != nil {
				return err
			}
			for k := i; k < e; k++ {
				if err := w.setEntry(first+int64(k), uint64(off+int64(k-i)*w.cs)|l2Copied); err != nil {
					return err
				}
			}
			i = e
		case storeCompressed:
			off, err := w.space.addPacked(j.out[o.off : o.off+o.n])
			if err != nil {
				return err
			}
			if off+int64(o.n) > 1<<x {
				return fmt.Errorf("qcow2: image file would grow past %d bytes, the most a compressed cluster entry can address with %d-byte clusters", int64(1)<<x, cs)
			}
			// The entry counts the 512-byte sectors after the first
			// that the compressed bytes touch.
			sectors := uint64((off+int64(o.n)-1)>>9 - off>>9)
			if err := w.setEntry(first+int64(i), l2Compressed|sectors<<x|uint64(off)); err != nil {
				return err
			}
			i++
		}
	}
	return nil
}
