package vma

import (
	"bytes"
	"errors"
	"io"
	"iter"
)

// WithSalvage makes the Reader read what it can of a damaged or truncated
// archive instead of failing at the first fault, for recovering data from
// a backup that is all there is. The header must still be intact: without
// it nothing places the data, and NewReader fails as usual.
//
// An extent that fails its checks (checksum, magic, uuid, block count,
// slots) is skipped as a whole and recorded (Damage); reading goes on at
// the next extent header found further on in the stream, one that has the
// magic, the archive's uuid and a valid checksum. When the stream ends
// inside an extent, the clusters whose data arrived in full are still
// delivered. A read error ends the archive like a truncation. Next then
// returns io.EOF however many clusters are missing, and Missing lists
// them. Memory stays bounded: the search for the next header looks at a
// 64 KiB window at a time.
//
// Skipping stays strict about what it delivers: every cluster comes from
// an extent whose header passed its checksum, with all its slots valid,
// and at most once. Data blocks carry no checksum in VMA, so, as without
// salvage, their content cannot be checked.
//
// The VM state's clusters may then skip ahead (the gap is missing); as the
// header does not fix the state's length, only gaps before its last
// cluster read count as missing.
func WithSalvage() ReaderOption {
	return func(o *readerOptions) error { o.salvage = true; return nil }
}

// Damage is a stretch of a salvaged archive that could not be used.
type Damage struct {
	// Offset is the archive offset of the extent that was refused (of
	// its header, or of the data that ended early).
	Offset int64
	// Resume is the archive offset of the next intact extent, where
	// reading went on, or -1 when the archive ended in the damage.
	Resume int64
	// Err says what was wrong: a *FormatError, or the error that broke
	// the stream.
	Err error
}

// maxDamage is how many Damage records a Reader keeps; beyond it, it only
// counts. Each record follows an intact extent, so a hostile archive could
// otherwise make one per 512 bytes.
const maxDamage = 1000

// scanWindow is how much of the stream the search for the next extent
// header holds at once.
const scanWindow = 64 << 10

// salvageState is what a salvaging Reader keeps beyond the normal one.
type salvageState struct {
	in     *pushback
	damage []Damage
	more   int  // damage beyond maxDamage
	ended  bool // the stream is over: Next returns io.EOF
	scan   []byte
}

func (s *salvageState) record(d Damage) {
	if len(s.damage) < maxDamage {
		s.damage = append(s.damage, d)
		return
	}
	s.more++
}

// Damage returns the damage a salvaging Reader has skipped so far, in
// archive order: at most the first 1000 records, and how many more there
// were. Without WithSalvage there is none: the first fault is Next's error.
func (r *Reader) Damage() (first []Damage, more int) {
	if r.salv == nil {
		return nil, 0
	}
	return r.salv.damage, r.salv.more
}

// MissingRange is a stretch of a device that the archive did not deliver.
type MissingRange struct {
	Device int    // dev_id
	Name   string // device name
	Start  int64  // byte offset in the device
	Length int64  // bytes; the range ends at the device's end at most
}

// Missing lists, after Next (or Extract) has returned io.EOF (nil), the
// ranges of each device, in dev_id and then offset order, whose clusters
// did not arrive: with WithSalvage, those of damaged extents and of a
// truncated end. A complete archive has none. Skipped devices (SkipDevice,
// or no Extract target) are left out. Ranges are whole 64 KiB clusters,
// except at a device's end.
func (r *Reader) Missing() iter.Seq[MissingRange] {
	return func(yield func(MissingRange) bool) {
		for _, d := range r.devs {
			if d == nil || d.skip {
				continue
			}
			n := d.clusters
			if d.dev.IsVMState() {
				n = int64(d.vmNext)
			}
			for c := int64(0); c < n; {
				first := d.seen.missingFrom(c, n)
				if first >= n {
					break
				}
				end := d.seen.seenFrom(first, n)
				start := first * ClusterSize
				m := MissingRange{Device: d.dev.ID, Name: d.dev.Name, Start: start, Length: min(end*ClusterSize, d.dev.Size) - start}
				if !yield(m) {
					return
				}
				c = end
			}
		}
	}
}

// salvageNext is next for a salvaging Reader: it turns every failure into
// a Damage record and goes on where it can.
func (r *Reader) salvageNext(bufp *[]byte, ext *Extent, keep bool) error {
	s := r.salv
	for {
		if s.ended {
			return io.EOF
		}
		off := r.off
		err := r.readExtent(bufp, ext, keep)
		if err == nil {
			return nil
		}
		if err == io.EOF {
			s.ended = true
			return io.EOF
		}
		switch r.failStage {
		case failSlots:
			// The header is sound, so its length is known: the next
			// extent starts right after it.
			r.off = off + r.failSize
			s.record(Damage{Offset: off, Resume: r.off, Err: err})
		case failHeader:
			if r.resync(off+1, (*bufp)[1:extentHeaderSize]) {
				s.record(Damage{Offset: off, Resume: r.off, Err: err})
				continue
			}
			s.record(Damage{Offset: off, Resume: -1, Err: err})
			s.ended = true
			return io.EOF
		case failBody:
			s.record(Damage{Offset: off, Resume: -1, Err: err})
			s.ended = true
			if len(ext.Clusters) > 0 {
				return nil // the intact part of the cut extent
			}
			return io.EOF
		default:
			s.record(Damage{Offset: off, Resume: -1, Err: err})
			s.ended = true
			return io.EOF
		}
	}
}

// resync looks for the next intact extent header in the stream. start is
// the archive offset of prefix, bytes already read that come before the
// rest of the stream. When it finds one it puts the bytes from the header
// on back in front of the stream, sets r.off to the header's offset and
// returns true; at the end of the stream it returns false.
func (r *Reader) resync(start int64, prefix []byte) bool {
	s := r.salv
	if cap(s.scan) < scanWindow {
		s.scan = make([]byte, 0, scanWindow)
	}
	win := append(s.scan[:0], prefix...)
	base := start // archive offset of win[0]
	atEnd := false
	// fill reads more of the stream into win's free space.
	fill := func() bool {
		for !atEnd {
			n, err := s.in.Read(win[len(win):cap(win)])
			win = win[:len(win)+n]
			if err != nil {
				atEnd = true
			}
			if n > 0 {
				return true
			}
		}
		return false
	}
	from := 0
	for {
		i := bytes.Index(win[from:], extentMagic[:])
		if i < 0 {
			// Keep what could be the start of a magic cut by the window.
			keep := min(len(win), len(extentMagic)-1)
			drop := len(win) - keep
			base += int64(drop)
			win = win[:copy(win, win[drop:])]
			from = 0
			if !fill() {
				return false
			}
			continue
		}
		i += from
		if len(win)-i < extentHeaderSize {
			base += int64(i)
			win = win[:copy(win, win[i:])]
			i, from = 0, 0
			for len(win) < extentHeaderSize {
				if !fill() {
					return false
				}
			}
		}
		cand := win[i : i+extentHeaderSize]
		// The uuid is compared first: it is cheaper than the checksum and
		// rules out nearly every stray "VMAE" in disk data.
		if bytes.Equal(cand[extUUID:extUUID+16], r.hdr.UUID[:]) {
			if _, err := parseExtentHeader(cand, r.hdr.UUID, base+int64(i)); err == nil {
				s.in.unread(win[i:])
				r.off = base + int64(i)
				return true
			}
		}
		from = i + 1
	}
}

// pushback is the stream of a salvaging Reader: bytes the search for a
// header read too far are put back in front of it.
type pushback struct {
	r       io.Reader
	pending []byte
}

func (p *pushback) Read(b []byte) (int, error) {
	if len(p.pending) > 0 {
		n := copy(b, p.pending)
		p.pending = p.pending[n:]
		return n, nil
	}
	return p.r.Read(b)
}

// unread puts a copy of b in front of what is still pending.
func (p *pushback) unread(b []byte) {
	nb := make([]byte, 0, len(b)+len(p.pending))
	p.pending = append(append(nb, b...), p.pending...)
}

// IsDamage reports whether err is one that WithSalvage would read past: a
// malformed extent or a truncated stream, rather than a bad header or an
// error of the caller's.
func IsDamage(err error) bool {
	var fe *FormatError
	if !errors.As(err, &fe) {
		return false
	}
	switch fe.Err {
	case ErrNotVMA, ErrVersion, ErrHeaderChecksum, ErrHeaderSize, ErrBlobPointer, ErrShortHeader,
		ErrInvalidDevice, ErrInvalidConfig, ErrUnsafeName, ErrDuplicateName:
		return false
	}
	return true
}
