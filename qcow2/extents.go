package qcow2

import "fmt"

// State is how a range of the virtual disk is stored in the image.
type State uint8

// Extent states.
const (
	// Unallocated ranges are not stored in this image: they read from the
	// backing file, or as zeros when there is none (or past its end).
	Unallocated State = iota
	// Data ranges are stored uncompressed. They may still hold zeros,
	// for instance in preallocated images.
	Data
	// Compressed ranges are stored as compressed clusters.
	Compressed
	// Zero ranges read as zeros whatever the backing file holds.
	Zero
)

// String returns the state's name, as in "qemu-img map" terms: "data",
// "compressed", "zero" or "unallocated".
func (s State) String() string {
	switch s {
	case Unallocated:
		return "unallocated"
	case Data:
		return "data"
	case Compressed:
		return "compressed"
	case Zero:
		return "zero"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// MarshalText writes the state's name, so JSON shows "data", not 1.
func (s State) MarshalText() ([]byte, error) {
	if s > Zero {
		return nil, fmt.Errorf("qcow2: unknown extent state %d", uint8(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText reads a state's name.
func (s *State) UnmarshalText(b []byte) error {
	for c := Unallocated; c <= Zero; c++ {
		if string(b) == c.String() {
			*s = c
			return nil
		}
	}
	return fmt.Errorf("qcow2: unknown extent state %q", b)
}

// Extent is a range of the virtual disk in one State.
type Extent struct {
	Start  int64 `json:"start"`
	Length int64 `json:"length"`
	State  State `json:"state"`
}

// Allocated reports whether the extent's data is stored in the image
// itself (Data or Compressed), the sum "qemu-img info" would count.
func (e Extent) Allocated() bool { return e.State == Data || e.State == Compressed }

func stateOf(k kind) State {
	switch k {
	case kindZero:
		return Zero
	case kindData:
		return Data
	case kindCompressed:
		return Compressed
	}
	return Unallocated
}

// Extents returns the allocation map of [off, off+length), clipped to the
// virtual size, as extents in order, adjacent extents of one State merged.
// It reads L2 tables only, never data. The slice grows with the number of
// state changes in the range; WalkExtents does not.
func (img *Image) Extents(off, length int64) ([]Extent, error) {
	var out []Extent
	err := img.WalkExtents(off, length, func(e Extent) error {
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// WalkExtents calls fn with the extents Extents would return, in order, one
// at a time, so that its memory does not grow with the map: a hostile image
// can map an exabyte in alternating states. It stops at the first error fn
// returns, and returns it.
func (img *Image) WalkExtents(off, length int64, fn func(Extent) error) error {
	if img.closed.Load() {
		return ErrClosed
	}
	if off < 0 || length < 0 {
		return errNegativeOffset
	}
	end := img.size
	if off < end && length < end-off {
		end = off + length
	}
	var pend Extent
	err := img.walk(off, end, 0, func(r run) error {
		s := stateOf(r.kind)
		if pend.Length > 0 && pend.State == s && pend.Start+pend.Length == r.off {
			pend.Length += r.n
			return nil
		}
		if pend.Length > 0 {
			if err := fn(pend); err != nil {
				return err
			}
		}
		pend = Extent{Start: r.off, Length: r.n, State: s}
		return nil
	})
	if err == nil && pend.Length > 0 {
		err = fn(pend)
	}
	return err
}

// maxDataRun bounds the range NextData returns, and so the L2 tables one
// call reads. A caller asks again at the end; a shorter range is still
// correct.
const maxDataRun = 1 << 30

// maxSearchEntries bounds the table entries one NextData call looks at
// (about 10 ms of work). A hostile image can map an exabyte with one L2
// table of zero clusters repeated; past the budget, NextData answers with
// one cluster that "may" hold data, which is conservative and lets the
// caller go on.
const maxSearchEntries = 1 << 20

// NextData returns the first range [start, end) at or after off that may
// hold non-zero bytes; everything in [off, start) reads as zeros. When no
// data remains it returns start == end == Size(). The range may be
// conservative (holding zeros), never optimistic.
//
// Data and compressed clusters are data; zero clusters are not; unallocated
// clusters are data only where the backing file may have data (all of
// them when WithBacking skipped the backing file). It reads L2 tables
// only (and those of the backing chain), never guest data.
func (img *Image) NextData(off int64) (start, end int64, err error) {
	if img.closed.Load() {
		return 0, 0, ErrClosed
	}
	if off < 0 {
		return 0, 0, errNegativeOffset
	}
	if off >= img.size {
		return img.size, img.size, nil
	}
	start, end, _, err = img.nextData(off, img.size)
	return start, end, err
}

// nextData is NextData within [off, limit): it returns (limit, limit) when
// that range holds no data. Bounding the search keeps a backing image from
// scanning far past the hole of its overlay that it was asked about. cut
// reports that the search budget ran out, so the range ends early or is a
// conservative guess; an overlay then stops searching too.
func (img *Image) nextData(off, limit int64) (start, end int64, cut bool, err error) {
	start, end = -1, -1
	// add extends the result with data range [s, e), or stops the walk
	// when the range does not continue it.
	add := func(s, e int64) error {
		switch {
		case start < 0:
			start, end = s, e
		case s == end:
			end = e
		default:
			return errStop
		}
		if end-start >= maxDataRun {
			return errStop
		}
		return nil
	}
	scanned := off // where the walk got to
	err = img.walk(off, limit, maxSearchEntries, func(r run) error {
		rEnd := r.off + r.n
		scanned = rEnd
		switch r.kind {
		case kindData, kindCompressed:
			if err := add(r.off, rEnd); err != nil {
				return err
			}
		case kindUnallocated:
			if img.skipped {
				// The backing file is not open: it may hold data.
				if err := add(r.off, rEnd); err != nil {
					return err
				}
			}
			for pos := r.off; pos < rEnd && img.backing != nil; {
				s, e, bcut, err := img.backing.nextData(pos, rEnd)
				if err != nil {
					return img.wrapBackingErr(err)
				}
				if s >= rEnd {
					break
				}
				if err := add(s, e); err != nil {
					return err
				}
				if bcut {
					cut = true
					return errStop
				}
				pos = e
			}
		}
		// Data ended inside or at the end of this run, and this run
		// does not continue it to its end: the next run cannot join.
		if start >= 0 && end < rEnd {
			return errStop
		}
		return nil
	})
	switch {
	case err == errBudget && start < 0:
		return scanned, min(scanned+img.clusterSize, limit), true, nil
	case err == errBudget:
		return start, end, true, nil
	case err != nil && err != errStop:
		return 0, 0, false, err
	case start < 0:
		return limit, limit, cut, nil
	}
	return start, end, cut, nil
}
