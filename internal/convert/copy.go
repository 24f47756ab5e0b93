package convert

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"

	"github.com/vmatool/vmatool/internal/pipeline"
)

// Source is a disk image to copy: random access and a size. If it also
// has NextData (raw.Disk and qcow2.Image do), the ranges it reports as
// holes are never read.
type Source interface {
	io.ReaderAt
	Size() int64
}

// dataMap is the allocation map of a Source.
type dataMap interface {
	NextData(off int64) (start, end int64, err error)
}

// Progress receives the number of bytes of the disk processed since its
// last call. A copy calls it from two goroutines (holes are counted as
// they are skipped, data as it is written), so it must be safe for
// concurrent use.
type Progress interface {
	Update(n int64)
}

const (
	// copyChunk is the disk span of one job of a copy: large reads, which
	// a qcow2 image decompresses on all cores.
	copyChunk = 2 << 20
	// copyBudget bounds the chunks in flight.
	copyBudget = 12 << 20
	// zeroBlock is the granularity at which a sparse copy finds zeros.
	zeroBlock = 4096
)

var zeroPage [zeroBlock]byte

// copyJob is one chunk of the disk on its way through a copy.
type copyJob struct {
	off    int64
	n      int64
	ranges [][2]int64 // data ranges, relative to off
	runs   [][2]int64 // sparse copy: the ranges holding a non-zero byte
	buf    []byte
	src    Source
	sparse bool
}

// SparseCopy copies src into dst, which must read as zeros (a new file
// truncated to the size): it writes only the 4 KiB blocks that hold a
// non-zero byte, so the copy of a raw file or an image is sparse whatever
// the source held. It returns the bytes written.
func SparseCopy(ctx context.Context, dst io.WriterAt, src Source, p Progress) (int64, error) {
	var written int64
	err := copyChunks(ctx, src, true, p, func(j *copyJob) error {
		for _, r := range j.runs {
			if _, err := dst.WriteAt(j.buf[r[0]:r[1]], j.off+r[0]); err != nil {
				return fmt.Errorf("writing at offset %d: %w", j.off+r[0], err)
			}
			written += r[1] - r[0]
		}
		return nil
	})
	return written, err
}

// StreamCopy writes the whole of src to w in order, holes as zeros.
func StreamCopy(ctx context.Context, w io.Writer, src Source, p Progress) error {
	return copyChunks(ctx, src, false, p, func(j *copyJob) error {
		_, err := w.Write(j.buf[:j.n])
		return err
	})
}

// copyChunks walks src in chunks, reads (and for a sparse copy,
// classifies) them on several workers, and delivers them in order. A
// sparse copy skips chunks that are all hole.
func copyChunks(ctx context.Context, src Source, sparse bool, p Progress, deliver func(*copyJob) error) error {
	cfg := pipeline.Budgeted(copyBudget, copyChunk, runtime.GOMAXPROCS(0))
	pipe := pipeline.NewOrdered(ctx, cfg, work, func(j *copyJob) error {
		if err := deliver(j); err != nil {
			return err
		}
		if p != nil {
			p.Update(j.n)
		}
		return nil
	})
	if err := produce(pipe, src, sparse, p); err != nil {
		pipe.Fail(err)
	}
	return pipe.Close()
}

func produce(pipe *pipeline.Ordered[copyJob], src Source, sparse bool, p Progress) error {
	size := src.Size()
	m, _ := src.(dataMap)
	// [lo, hi) is the last answer of the map: zeros before lo.
	lo, hi := int64(0), int64(0)
	for off := int64(0); off < size; {
		end := min(off+copyChunk, size)
		var ranges [][2]int64
		if m == nil {
			ranges = append(ranges, [2]int64{0, end - off})
		}
		for pos := off; m != nil && pos < end; {
			if pos >= hi {
				s, e, err := m.NextData(pos)
				if err != nil {
					return fmt.Errorf("finding data after offset %d: %w", pos, err)
				}
				if s < pos || e < s || (e == s && s < size) {
					return fmt.Errorf("the source's NextData(%d) returned [%d, %d)", pos, s, e)
				}
				lo, hi = s, e
			}
			if lo >= end || lo == hi {
				break
			}
			a := max(lo, pos) / zeroBlock * zeroBlock
			b := min((min(hi, end)+zeroBlock-1)/zeroBlock*zeroBlock, end)
			if k := len(ranges); k > 0 && ranges[k-1][1] >= a-off {
				ranges[k-1][1] = b - off
			} else {
				ranges = append(ranges, [2]int64{a - off, b - off})
			}
			pos = b
		}
		if sparse && len(ranges) == 0 {
			// All hole: nothing to read or write, up to the next data.
			next := min(max(lo&^(copyChunk-1), end), size)
			if p != nil {
				p.Update(next - off)
			}
			off = next
			continue
		}
		j, err := pipe.Next()
		if err != nil {
			return err
		}
		v := &j.V
		v.off, v.n, v.src, v.sparse = off, end-off, src, sparse
		v.ranges = append(v.ranges[:0], ranges...)
		pipe.Submit(j)
		off = end
	}
	return nil
}

// work reads a chunk's data ranges; a stream copy gets zeros around them,
// a sparse copy the runs of blocks to write.
func work(_ context.Context, j *copyJob) error {
	if cap(j.buf) < copyChunk {
		j.buf = make([]byte, copyChunk)
	}
	j.buf = j.buf[:j.n]
	j.runs = j.runs[:0]
	prev := int64(0)
	for _, r := range j.ranges {
		if !j.sparse {
			clear(j.buf[prev:r[0]])
		}
		b := j.buf[r[0]:r[1]]
		n, err := j.src.ReadAt(b, j.off+r[0])
		if n < len(b) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("reading %d bytes at offset %d: %w", len(b), j.off+r[0]+int64(n), err)
		}
		prev = r[1]
		if j.sparse {
			j.addRuns(r[0], r[1])
		}
	}
	if !j.sparse {
		clear(j.buf[prev:])
	}
	return nil
}

// addRuns adds the runs of non-zero blocks of buf[a:b] to j.runs.
func (j *copyJob) addRuns(a, b int64) {
	for blk := a; blk < b; blk += zeroBlock {
		e := min(blk+zeroBlock, b)
		if bytes.Equal(j.buf[blk:e], zeroPage[:e-blk]) {
			continue
		}
		if k := len(j.runs); k > 0 && j.runs[k-1][1] == blk {
			j.runs[k-1][1] = e
		} else {
			j.runs = append(j.runs, [2]int64{blk, e})
		}
	}
}
