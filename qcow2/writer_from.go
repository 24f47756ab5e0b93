package qcow2

import (
	"context"
	"fmt"
	"io"

	"github.com/vmatool/vmatool/internal/pipeline"
)

// dataMap is the allocation map of a source, as *Image and raw.Disk have
// it: NextData returns the first range at or after off that may hold
// data, and start == end == the size when none is left.
type dataMap interface {
	NextData(off int64) (start, end int64, err error)
}

// maxHoleJob bounds the hole one job stands for, so that Progress moves
// steadily through a huge empty disk.
const maxHoleJob = 1 << 30

// WriteFrom writes the whole virtual disk from src, up to the size given
// to NewWriter, reading and compressing on all workers; the calling
// goroutine only walks the disk. If src has a NextData method (*Image and
// raw.Disk do), ranges it reports as holes are never read. If it has a
// Size method, the size must match the Writer's.
//
// WriteFrom must be the Writer's only write: it fails with
// ErrClusterWritten after WriteAt. p may be nil. If ctx is cancelled or
// src fails, WriteFrom returns the error and the image cannot be
// completed: Close reports it. To stop a WriteFrom, cancel ctx; Abort
// waits for it to return.
func (w *Writer) WriteFrom(ctx context.Context, src io.ReaderAt, p Progress) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	if w.wrote {
		return fmt.Errorf("qcow2: WriteFrom after other writes: %w", ErrClusterWritten)
	}
	// Reads stop at the end of the source; the rest of the last sector
	// of an odd-sized disk is zeros.
	limit := w.given
	if s, ok := src.(interface{ Size() int64 }); ok {
		if s.Size() != w.given && s.Size() != w.size {
			return fmt.Errorf("qcow2: source is %d bytes, the image %d", s.Size(), w.given)
		}
		limit = s.Size()
	}
	w.wrote = true
	pipe := w.newPipeline(ctx, p)
	m, _ := src.(dataMap)
	if err := w.produce(pipe, src, m, limit); err != nil {
		pipe.Fail(err)
	}
	if err := pipe.Close(); err != nil {
		return w.fail(err)
	}
	return nil
}

// produce walks the disk and submits its jobs: runs of clusters that hold
// data, to read, and holes, to record.
func (w *Writer) produce(pipe *pipeline.Ordered[clusterJob], src io.ReaderAt, m dataMap, limit int64) error {
	cs := w.cs
	end := (w.size + cs - 1) &^ (cs - 1)
	jobBytes := int64(w.jobClusters) * cs
	// [ds, de) is the next data range of the source.
	ds, de := int64(0), int64(0)
	next := func(off int64) error {
		if m == nil {
			ds, de = off, limit
			return nil
		}
		s, e, err := m.NextData(off)
		if err != nil {
			return fmt.Errorf("qcow2: finding data in the source after offset %d: %w", off, err)
		}
		if s < off || e < s || (e == s && s < limit) {
			return fmt.Errorf("qcow2: source's NextData(%d) returned [%d, %d)", off, s, e)
		}
		ds, de = min(s, limit), min(e, limit)
		return nil
	}
	hole := func(from, to int64) error {
		for from < to {
			n := min(to-from, maxHoleJob)
			j, err := pipe.Next()
			if err != nil {
				return err
			}
			j.V.reset(from, int(n>>w.cbits), min(from+n, w.size)-from)
			j.V.hole = true
			pipe.SubmitDone(j)
			from += n
		}
		return nil
	}

	for pos := int64(0); pos < end; {
		if de <= pos && ds < limit {
			if err := next(pos); err != nil {
				return err
			}
		}
		if ds >= limit {
			return hole(pos, end)
		}
		// Clusters wholly before the data are a hole.
		if h := ds &^ (cs - 1); h > pos {
			if err := hole(pos, h); err != nil {
				return err
			}
			pos = h
			continue
		}
		j, err := pipe.Next()
		if err != nil {
			return err
		}
		v := &j.V
		jobEnd := min(pos+jobBytes, end)
		ranges := v.ranges[:0]
		last := pos
		for ds < jobEnd && ds < limit {
			s, e := max(ds, pos), min(de, jobEnd)
			ranges = append(ranges, [2]int64{s - pos, e - pos})
			last = e
			if de > jobEnd {
				break // the range goes on in the next job
			}
			if err := next(de); err != nil {
				pipe.Fail(err)
				v.reset(pos, 0, 0) // an empty job, only to hand it back
				pipe.SubmitDone(j)
				return err
			}
		}
		// The job ends with the cluster of its last data byte.
		jobEnd = min(jobEnd, (last+cs-1)&^(cs-1))
		v.reset(pos, int((jobEnd-pos)>>w.cbits), min(jobEnd, w.size)-pos)
		v.src, v.ranges = src, ranges
		pipe.Submit(j)
		pos = jobEnd
	}
	return nil
}
