package vma

import "fmt"

// dataCursor walks a disk's data ranges in ascending order for consecutive
// jobs. It asks the disk again only when a job reaches past its last
// answer: on filesystems where SEEK_DATA walks the hole it starts in
// (tmpfs), asking once per extent would cost time quadratic in a hole's
// size, and a 64 GiB image with 64 MiB of data would take seconds.
type dataCursor struct {
	disk   Disk
	sparse SparseDisk // nil: everything is data
	name   string
	size   int64
	lo, hi int64 // the last answer: zeros before lo, maybe data in [lo, hi)
}

func newDataCursor(d Disk, name string) *dataCursor {
	c := &dataCursor{disk: d, name: name, size: d.Size()}
	c.sparse, _ = d.(SparseDisk)
	return c
}

// ranges appends to dst the ranges of [start, end) that may hold data,
// rounded out to whole blocks (never past the block holding the device's
// last byte), relative to start, merged where they touch.
func (c *dataCursor) ranges(dst [][2]int64, start, end int64) ([][2]int64, error) {
	blockEnd := (end + BlockSize - 1) / BlockSize * BlockSize
	add := func(lo, hi int64) {
		lo = lo / BlockSize * BlockSize
		hi = min((hi+BlockSize-1)/BlockSize*BlockSize, blockEnd)
		if n := len(dst); n > 0 && dst[n-1][1] >= lo-start {
			dst[n-1][1] = max(dst[n-1][1], hi-start)
			return
		}
		dst = append(dst, [2]int64{lo - start, hi - start})
	}
	if c.sparse == nil {
		add(start, end)
		return dst, nil
	}
	for off := start; off < end; {
		if err := c.ask(off); err != nil {
			return dst, err
		}
		if c.lo >= end || c.lo == c.hi {
			break // the next data lies past this job
		}
		lo, hi := max(c.lo, off), min(c.hi, end)
		add(lo, hi)
		off = hi
	}
	return dst, nil
}

// nextData returns where the next data at or after off may start (the
// device size if none), asking the disk only past its last answer. Calls
// must not go back before an earlier one's off.
func (c *dataCursor) nextData(off int64) (int64, error) {
	if c.sparse == nil {
		return off, nil
	}
	if err := c.ask(off); err != nil {
		return 0, err
	}
	if c.lo == c.hi {
		return c.size, nil
	}
	return max(c.lo, off), nil
}

// ask makes the last answer cover off, asking the disk if off is past it.
func (c *dataCursor) ask(off int64) error {
	if off < c.hi {
		return nil
	}
	lo, hi, err := c.sparse.NextData(off)
	if err != nil {
		return fmt.Errorf("vma: device %s: finding data at offset %d: %w", c.name, off, err)
	}
	if lo < off || hi < lo || (hi == lo && lo < c.size) {
		// A disk that answers nonsense must not loop or skip data.
		return fmt.Errorf("vma: device %s: NextData(%d) returned [%d, %d)", c.name, off, lo, hi)
	}
	c.lo, c.hi = lo, hi
	return nil
}
