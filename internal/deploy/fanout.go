package deploy

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// This file holds the fan-out buffer: one stream, written once, read by
// several readers at their own pace in bounded memory. share.go puts it
// between one archive writer and the uploads of the targets that share
// the archive.
//
// The stream's most recent bytes sit in a ring of fixed-size chunks; each
// reader has its own position in the stream. The writer appends until the
// ring is full, then frees its oldest chunk once no reader needs it. While
// a reader still needs it the writer waits, so a slow reader holds the
// others back, but only by the ring's size: when a reader that has caught
// up with the writer is starved by a chunk a slower reader still needs,
// the chunk is copied to a spill file on local disk and freed, and the
// slow reader reads it from there, never holding the others back again.
// The spill file is unlinked as soon as it is made, and on Linux the part
// every reader has passed is punched out, so it holds only what the
// slowest reader has not consumed. Without a folder to spill to, or once
// a write to the spill file fails (a full disk), the slow readers are
// dropped with ErrFellBehind instead, and the others go on.
//
// Memory is the ring alone (chunks are allocated on first use, never
// more than the budget); readers copy into the caller's buffer, so their
// number adds nothing but a few words each.

const (
	// shareBudget is the ring of a shared archive, however many targets
	// read it: a deploy's memory is the pack pipeline's (budget.Pack, some
	// 55 MiB), this ring, and each upload's own buffers, and a larger ring
	// would only put off a slow target's spilling, not spare it. Two
	// zstd frames (2 MiB each) fit, and so do the bursts of SSH's flow
	// control. It is also how far a target may lag before the spill file
	// serves it. Sixteen targets sharing a 1 GiB image peaked at 58 MiB
	// with 4 MiB, 61 MiB with 6 MiB and 63-64 MiB with 8 MiB (bench
	// BenchmarkDeployFanoutRSS): 8 MiB would spare the spill file the lags
	// of stand-in nodes that share two cores with the sender, 6 MiB does
	// not, and neither fits the 64 MiB bound with room to spare.
	shareBudget = 4 << 20
	// shareChunk is the ring's unit: large enough that the per-chunk
	// bookkeeping vanishes, small enough that a chunk pinned by a reader's
	// copy is freed within microseconds.
	shareChunk = 1 << 20
)

// ErrFellBehind means a target was dropped from the archive it shared
// with other targets: it fell a whole ring behind the fastest of them and
// what it had not read could not be kept on local disk.
var ErrFellBehind = errors.New("deploy: fell behind the targets sharing its archive")

var (
	errNoReaders    = errors.New("deploy: every target sharing the archive stopped reading it")
	errReaderClosed = errors.New("deploy: read from a closed share of an archive")
	errWriteClosed  = errors.New("deploy: write to a finished shared archive")
)

// fanout is the buffer. Its writer methods (Write, CloseWrite) are for
// one goroutine; each fanoutReader is for one goroutine.
type fanout struct {
	mu    sync.Mutex
	data  sync.Cond // readers wait here for bytes or the end
	space sync.Cond // the writer waits here for the oldest chunk to free

	chunk int
	slots [][]byte // the ring; chunk k of the stream is in slots[k%len]
	pins  []int    // readers copying out of each slot right now
	held  int64    // bytes of allocated slots
	peak  int64    // the most held at once

	low     int64 // stream offset of the oldest byte in the ring, a chunk boundary
	written int64 // stream bytes written
	readers []*fanoutReader

	closed   bool
	closeErr error

	spillDir  string
	spill     *os.File
	spillName string // removed at close when it could not be unlinked at once
	spillErr  error  // why spilling is off: no folder, or a write failed
	spilled   int64  // bytes written to the spill file
	unspilled int64  // bytes read back from it
	punched   int64  // spill bytes before this offset are freed
}

// newFanout makes a buffer of budget bytes in chunks of chunk bytes (at
// least one), spilling into a temporary file in spillDir ("" drops slow
// readers instead).
func newFanout(budget, chunk int, spillDir string) *fanout {
	n := max(budget/chunk, 1)
	f := &fanout{chunk: chunk, slots: make([][]byte, n), pins: make([]int, n), spillDir: spillDir}
	f.data.L, f.space.L = &f.mu, &f.mu
	if spillDir == "" {
		f.spillErr = errors.New("no folder to spill to was given")
	}
	return f
}

// fanoutReader is one reader's view of the stream, from its start.
type fanoutReader struct {
	f       *fanout
	pos     int64
	err     error // set once closed or dropped; what Read returns from then on
	eof     bool  // Read returned io.EOF
	waiting bool  // blocked in Read at the writer's position
	spilled int64 // bytes read from the spill file
}

// newReader adds a reader at the start of the stream. Readers are added
// before the first Write: a later one would miss what the ring freed.
func (f *fanout) newReader() *fanoutReader {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := &fanoutReader{f: f}
	if f.written > 0 {
		r.err = errors.New("deploy: reader added to a shared archive after it started")
	}
	f.readers = append(f.readers, r)
	return r
}

// Write appends p to the stream. It blocks while the ring is full and
// every reader that needs the oldest chunk is still busy with data it
// has, and fails once no reader is left.
func (f *fanout) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for len(p) > 0 {
		switch {
		case f.closed:
			return n, errWriteClosed
		case len(f.readers) == 0:
			return n, errNoReaders
		case f.written-f.low == int64(len(f.slots)*f.chunk):
			f.freeOldest()
			continue // the state changed while waiting: look again
		}
		i := f.slot(f.written)
		if f.slots[i] == nil {
			f.slots[i] = make([]byte, f.chunk)
			f.held += int64(f.chunk)
			f.peak = max(f.peak, f.held)
		}
		// The writer copies under the lock: the bytes past f.written are
		// no reader's yet, and one memcpy per chunk costs the readers
		// nothing worth a pin.
		m := copy(f.slots[i][f.written%int64(f.chunk):], p)
		f.written += int64(m)
		n += m
		p = p[m:]
		f.data.Broadcast()
	}
	return n, nil
}

func (f *fanout) slot(off int64) int { return int(off / int64(f.chunk) % int64(len(f.slots))) }

// freeOldest frees the ring's oldest chunk, or waits once for a reader to
// move; the caller looks again either way. A chunk that readers still
// need is spilled (or they are dropped) only when another reader is
// starved at the writer's position: until then the slow ones throttle
// the writer, since everyone is busy anyway.
func (f *fanout) freeOldest() {
	end := f.low + int64(f.chunk)
	i := f.slot(f.low)
	lagging, starved := false, false
	for _, r := range f.readers {
		switch {
		case r.pos < end:
			lagging = true
		case r.waiting && r.pos == f.written:
			starved = true
		}
	}
	if f.pins[i] > 0 || (lagging && !starved) {
		f.space.Wait()
		return
	}
	if lagging {
		if err := f.spillChunk(i); err != nil {
			f.dropBefore(end, err)
		}
	}
	f.low = end
	f.trimSpill()
}

// spillChunk copies the oldest chunk to the spill file, at its stream
// offset.
func (f *fanout) spillChunk(i int) error {
	if f.spillErr != nil {
		return f.spillErr
	}
	if f.spill == nil {
		sf, err := os.CreateTemp(f.spillDir, "vmatool-share-*.spill")
		if err != nil {
			f.spillErr = err
			return err
		}
		// Unlinked while open, it goes away with the process, however that
		// ends; where that is not allowed it is removed at close.
		if os.Remove(sf.Name()) != nil {
			f.spillName = sf.Name()
		}
		f.spill = sf
	}
	if _, err := f.spill.WriteAt(f.slots[i], f.low); err != nil {
		f.spillErr = fmt.Errorf("writing the spill file: %w", err)
		return f.spillErr
	}
	f.spilled += int64(f.chunk)
	return nil
}

// dropBefore drops the readers still short of offset end, saying why.
func (f *fanout) dropBefore(end int64, cause error) {
	lag := f.written - f.low
	for _, r := range append([]*fanoutReader(nil), f.readers...) {
		if r.pos < end {
			f.drop(r, fmt.Errorf("%w: it lagged %s behind the fastest of them, and what it had not read could not be kept on disk: %v",
				ErrFellBehind, formatMiB(lag), cause))
		}
	}
}

func formatMiB(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// drop removes r with err, which its Read returns from then on.
func (f *fanout) drop(r *fanoutReader, err error) {
	if r.err != nil {
		return
	}
	r.err = err
	for i, o := range f.readers {
		if o == r {
			f.readers = append(f.readers[:i], f.readers[i+1:]...)
			break
		}
	}
	f.trimSpill()
	f.space.Signal()
	f.data.Broadcast()
}

// trimSpill frees the part of the spill file that every reader has
// passed.
func (f *fanout) trimSpill() {
	if f.spill == nil {
		return
	}
	upTo := f.low
	for _, r := range f.readers {
		upTo = min(upTo, r.pos)
	}
	upTo -= upTo % int64(f.chunk)
	if upTo > f.punched && punchHole(f.spill, f.punched, upTo-f.punched) == nil {
		f.punched = upTo
	}
}

// CloseWrite ends the stream: readers get io.EOF after the last byte, or
// err at once if it is not nil.
func (f *fanout) CloseWrite(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed, f.closeErr = true, err
	f.data.Broadcast()
}

// Close releases the spill file. Call it once the writer and every
// reader are done.
func (f *fanout) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.spill == nil {
		return nil
	}
	err := f.spill.Close()
	if f.spillName != "" {
		if rerr := os.Remove(f.spillName); err == nil {
			err = rerr
		}
	}
	f.spill = nil
	return err
}

// Read reads the stream from the reader's position: from the spill file
// if the ring has freed that part, else from the ring, else it waits for
// the writer.
func (r *fanoutReader) Read(p []byte) (int, error) {
	f := r.f
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		switch {
		case r.err != nil:
			return 0, r.err
		case f.closeErr != nil:
			return 0, f.closeErr
		case len(p) == 0:
			return 0, nil
		case r.pos < f.low:
			return r.readSpill(p)
		case r.pos < f.written:
			return r.readRing(p), nil
		case f.closed:
			r.eof = true
			return 0, io.EOF
		}
		r.waiting = true
		f.space.Signal() // a starved reader may let the writer spill
		f.data.Wait()
		r.waiting = false
	}
}

// readRing copies from the chunk at the reader's position, with the
// lock released: the pin keeps the writer from reusing the slot.
func (r *fanoutReader) readRing(p []byte) int {
	f := r.f
	i := f.slot(r.pos)
	off := int(r.pos % int64(f.chunk))
	n := int(min(int64(len(p)), int64(f.chunk-off), f.written-r.pos))
	src := f.slots[i][off : off+n]
	f.pins[i]++
	f.mu.Unlock()
	copy(p, src)
	f.mu.Lock()
	f.pins[i]--
	r.pos += int64(n)
	f.space.Signal()
	return n
}

// readSpill reads from the spill file with the lock released: no one
// frees what lies at or after a reader's position.
func (r *fanoutReader) readSpill(p []byte) (int, error) {
	f := r.f
	n := int(min(int64(len(p)), f.low-r.pos))
	sf, pos := f.spill, r.pos
	f.mu.Unlock()
	n, err := sf.ReadAt(p[:n], pos)
	f.mu.Lock()
	if r.err != nil {
		return 0, r.err
	}
	if n == 0 && err != nil {
		f.drop(r, fmt.Errorf("reading the spill file: %w", err))
		return 0, r.err
	}
	r.pos += int64(n)
	r.spilled += int64(n)
	f.unspilled += int64(n)
	f.trimSpill()
	f.space.Signal()
	return n, nil
}

// CloseWithError drops the reader (nil: it is done): the writer no longer
// waits for it, and its Read returns err.
func (r *fanoutReader) CloseWithError(err error) {
	if err == nil {
		err = errReaderClosed
	}
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	r.f.drop(r, err)
}

// Close drops the reader as done.
func (r *fanoutReader) Close() error {
	r.CloseWithError(nil)
	return nil
}

// state returns how the reader ended: whether it read to the end, else
// why not if it knows (it was dropped, or the writer failed), and how
// much it read from the spill file.
func (r *fanoutReader) state() (eof bool, err error, spilled int64) {
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	err = r.err
	if err == nil {
		err = r.f.closeErr
	}
	return r.eof, err, r.spilled
}

// fanoutStats are what tests and warnings want to know of a buffer.
type fanoutStats struct {
	written, spilled, unspilled, peakHeld int64
}

func (f *fanout) stats() fanoutStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fanoutStats{written: f.written, spilled: f.spilled, unspilled: f.unspilled, peakHeld: f.peak}
}
