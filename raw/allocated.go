package raw

// Windows has no SEEK_DATA. Its filesystems list a file's allocated ranges
// instead (FSCTL_QUERY_ALLOCATED_RANGES), and seek_windows.go answers
// lseek's two questions from that list, so NextData keeps one contract on
// every system. The translation lives here, free of system calls, so its
// tests run everywhere; only the call itself is Windows-only.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// allocatedRangeSize is the size of FILE_ALLOCATED_RANGE_BUFFER: FileOffset
// and Length, two little-endian int64s (Windows runs little-endian only).
const allocatedRangeSize = 16

// allocatedRangesPerQuery is how many ranges one query returns at most; a
// file with more is asked again from where the answer stopped.
const allocatedRangesPerQuery = 64

// errBadRanges marks an answer to FSCTL_QUERY_ALLOCATED_RANGES that breaks
// its own rules. NextData reports it rather than guess.
var errBadRanges = errors.New("malformed allocated ranges")

// allocatedRange is [start, end) of a file, allocated on disk: it may hold
// non-zero bytes. Outside every such range the file reads as zeros.
type allocatedRange struct{ start, end int64 }

// putRangeQuery fills b with the query for the allocated ranges from off
// to the largest offset a file can have.
func putRangeQuery(b *[allocatedRangeSize]byte, off int64) {
	binary.LittleEndian.PutUint64(b[0:], uint64(off))
	binary.LittleEndian.PutUint64(b[8:], uint64(math.MaxInt64-off))
}

// parseAllocatedRanges decodes the n-byte answer of one query: ranges in
// ascending order, none overlapping the one before, none empty.
func parseAllocatedRanges(b []byte) ([]allocatedRange, error) {
	if len(b)%allocatedRangeSize != 0 {
		return nil, fmt.Errorf("%w: %d bytes is not a whole number of %d-byte ranges", errBadRanges, len(b), allocatedRangeSize)
	}
	rs := make([]allocatedRange, 0, len(b)/allocatedRangeSize)
	for i := 0; i < len(b); i += allocatedRangeSize {
		off := int64(binary.LittleEndian.Uint64(b[i:]))
		n := int64(binary.LittleEndian.Uint64(b[i+8:]))
		if off < 0 || n <= 0 || n > math.MaxInt64-off {
			return nil, fmt.Errorf("%w: range %d has offset %d and length %d", errBadRanges, len(rs), off, n)
		}
		if len(rs) > 0 && off < rs[len(rs)-1].end {
			return nil, fmt.Errorf("%w: range %d at %d starts before the previous one ends at %d", errBadRanges, len(rs), off, rs[len(rs)-1].end)
		}
		rs = append(rs, allocatedRange{off, off + n})
	}
	return rs, nil
}

// rangeQuery asks the filesystem once for the allocated ranges at or after
// off, writing at most len(out) bytes of answer to out. It returns the
// bytes written, and more when ranges were left out for lack of room.
type rangeQuery func(off int64, out []byte) (n int, more bool, err error)

// seekAllocated answers lseek's SEEK_DATA (data true) or SEEK_HOLE at off
// from allocated ranges: the first allocated byte at or after off, or
// errNoData; or the first unallocated byte at or after off, which may be
// the end of the last range (the file's end, or past it, as NTFS rounds).
//
// A range may start before off (NTFS rounds the query's offset down) and
// neighbouring ranges may touch; both are allowed for. If the ranges
// before off fill a whole answer, no query can see past them, and the
// answer is conservative: off for SEEK_DATA, math.MaxInt64 for SEEK_HOLE.
// That cannot happen with NTFS, whose rounding brings a few ranges at
// most.
func seekAllocated(query rangeQuery, off int64, data bool) (int64, error) {
	var out [allocatedRangesPerQuery * allocatedRangeSize]byte
	pos := off // for SEEK_HOLE: the end of the data found so far
	for {
		n, more, err := query(pos, out[:])
		if err != nil {
			return 0, err
		}
		if n < 0 || n > len(out) {
			return 0, fmt.Errorf("%w: %d bytes of answer in a %d-byte buffer", errBadRanges, n, len(out))
		}
		rs, err := parseAllocatedRanges(out[:n])
		if err != nil {
			return 0, err
		}
		asked := pos
		for _, r := range rs {
			switch {
			case r.end <= pos:
				continue // before off, from the rounded-down query
			case data:
				return max(r.start, pos), nil
			case r.start > pos:
				return pos, nil // a gap: the hole starts where the data ended
			}
			pos = r.end
		}
		if !more {
			if data {
				return 0, errNoData
			}
			return pos, nil
		}
		if pos <= asked {
			// A full answer that does not reach past the question would
			// come again if asked again: the rounded-down offset brought
			// more ranges before it than fit. (For SEEK_DATA every full
			// answer is such, as any range past off would have been the
			// answer.) Give up conservatively: data may start right here,
			// and no hole is known before the end of the file, which
			// NextData clips to its size.
			if data {
				return pos, nil
			}
			return math.MaxInt64, nil
		}
	}
}
