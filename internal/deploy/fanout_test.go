//go:build unix

package deploy

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pattern fills p with the stream's bytes at off: every byte depends on
// its offset, so a reader that skips, repeats or shifts data is caught
// without keeping the whole stream.
func pattern(off int64, p []byte) {
	for i := range p {
		x := uint64(off+int64(i)) * 0x9E3779B97F4A7C15
		p[i] = byte(x >> 56)
	}
}

// checkPattern reports the first byte of p that is not the stream's at
// off.
func checkPattern(off int64, p []byte) error {
	want := make([]byte, len(p))
	pattern(off, want)
	for i := range p {
		if p[i] != want[i] {
			return fmt.Errorf("byte %d is %#x, want %#x", off+int64(i), p[i], want[i])
		}
	}
	return nil
}

// writeStream writes size bytes of the pattern in pieces of random
// sizes, then ends the stream with the write's error.
func writeStream(f *fanout, size int64, seed uint64) error {
	r := rand.New(rand.NewPCG(seed, 1))
	buf := make([]byte, 96<<10)
	var off int64
	var err error
	for off < size && err == nil {
		n := int(min(int64(1+r.IntN(len(buf))), size-off))
		pattern(off, buf[:n])
		var m int
		m, err = f.Write(buf[:n])
		off += int64(m)
	}
	f.CloseWrite(err)
	return err
}

// reader reads r to its end with reads of bufSize bytes, checking every
// byte, pausing pause between reads; it returns the bytes read and how
// the stream ended (nil at io.EOF).
func readStream(r io.Reader, bufSize int, pause time.Duration) (int64, error) {
	buf := make([]byte, bufSize)
	var off int64
	for {
		n, err := r.Read(buf)
		if cerr := checkPattern(off, buf[:n]); cerr != nil {
			return off, cerr
		}
		off += int64(n)
		if err == io.EOF {
			return off, nil
		}
		if err != nil {
			return off, err
		}
		if pause > 0 {
			time.Sleep(pause)
		}
	}
}

type readResult struct {
	n   int64
	err error
}

// TestFanoutReadersAtDifferentSpeeds: readers with different buffer
// sizes and pauses each receive the whole stream exactly, whatever the
// ring had to spill for the slow ones, and the ring never holds more
// than its budget.
func TestFanoutReadersAtDifferentSpeeds(t *testing.T) {
	const size, budget, chunk = 8 << 20, 256 << 10, 16 << 10
	f := newFanout(budget, chunk, t.TempDir())
	defer f.Close()
	speeds := []struct {
		buf   int
		pause time.Duration
	}{{1 << 20, 0}, {32 << 10, 0}, {4 << 10, 0}, {64 << 10, 200 * time.Microsecond}}
	results := make([]readResult, len(speeds))
	var wg sync.WaitGroup
	for i, s := range speeds {
		r := f.newReader()
		wg.Go(func() {
			n, err := readStream(r, s.buf, s.pause)
			results[i] = readResult{n, err}
			r.Close()
		})
	}
	if err := writeStream(f, size, 1); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, res := range results {
		if res.err != nil || res.n != size {
			t.Errorf("reader %d: %d bytes, %v", i, res.n, res.err)
		}
	}
	if st := f.stats(); st.peakHeld > budget || st.written != size {
		t.Errorf("stats %+v: the ring held more than its budget %d", st, budget)
	}
}

// spillBlocks is the storage the spill file takes, in bytes.
func spillBlocks(t *testing.T, f *fanout) int64 {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.spill == nil {
		return 0
	}
	st, err := f.spill.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Blocks * 512
}

// TestFanoutStoppedReaderSpills: a reader that stops holds the others
// back by the ring alone; then the writer spills what it has not read,
// the others finish, and when it resumes it reads the rest from the
// spill file, which holds only what it has not read yet and is never
// seen in the folder.
func TestFanoutStoppedReaderSpills(t *testing.T) {
	const size, budget, chunk = 16 << 20, 512 << 10, 64 << 10
	dir := t.TempDir()
	f := newFanout(budget, chunk, dir)
	defer f.Close()
	fast1, fast2, slow := f.newReader(), f.newReader(), f.newReader()
	var wg sync.WaitGroup
	var r1, r2 readResult
	wg.Go(func() { r1.n, r1.err = readStream(fast1, 32<<10, 0) })
	wg.Go(func() { r2.n, r2.err = readStream(fast2, 1<<20, 0) })

	writeDone := make(chan error, 1)
	go func() { writeDone <- writeStream(f, size, 2) }()
	// The slow reader takes 100 KiB, then stops.
	head := make([]byte, 100<<10)
	if _, err := io.ReadFull(slow, head); err != nil {
		t.Fatal(err)
	}
	if err := checkPattern(0, head); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-writeDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the writer waited for the stopped reader beyond the ring")
	}
	wg.Wait()
	if r1.err != nil || r1.n != size || r2.err != nil || r2.n != size {
		t.Fatalf("fast readers: %+v %+v", r1, r2)
	}
	st := f.stats()
	if st.spilled < size-budget-(100<<10) || st.peakHeld > budget {
		t.Errorf("stats %+v: the stopped reader's %d unread bytes should be spilled, the ring within %d", st, size-(100<<10), budget)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("the spill file shows in its folder: %v", names)
	}
	onLinux := runtime.GOOS == "linux"
	if got := spillBlocks(t, f); onLinux && (got > size-(100<<10)+chunk || got < size/2) {
		t.Errorf("spill file takes %d bytes for %d unread", got, size-(100<<10))
	}

	// It resumes: half, then the rest.
	half := make([]byte, size/2-(100<<10))
	if _, err := io.ReadFull(slow, half); err != nil {
		t.Fatal(err)
	}
	if err := checkPattern(100<<10, half); err != nil {
		t.Fatal(err)
	}
	if got := spillBlocks(t, f); onLinux && got > size/2+chunk {
		t.Errorf("after reading half, the spill file still takes %d bytes for %d unread", got, size/2)
	}
	rest, err := io.ReadAll(slow)
	if err != nil || len(rest) != size/2 {
		t.Fatalf("rest: %d bytes, %v", len(rest), err)
	}
	if err := checkPattern(size/2, rest); err != nil {
		t.Fatal(err)
	}
	eof, rerr, spilled := slow.state()
	if !eof || rerr != nil || spilled < size-budget-(100<<10) {
		t.Errorf("slow reader: eof %v, err %v, %d bytes from the spill file", eof, rerr, spilled)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestFanoutDropsWhenNothingToSpillTo: without a spill folder, or when
// the spill file cannot be made, a stopped reader is dropped with
// ErrFellBehind saying why, and the others finish.
func TestFanoutDropsWhenNothingToSpillTo(t *testing.T) {
	for _, tc := range []struct{ name, dir, why string }{
		{"no folder", "", "no folder to spill to"},
		{"folder missing", "/nonexistent/vmatool-spill", "no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const size, budget, chunk = 4 << 20, 128 << 10, 16 << 10
			f := newFanout(budget, chunk, tc.dir)
			defer f.Close()
			fast, slow := f.newReader(), f.newReader()
			var res readResult
			var wg sync.WaitGroup
			wg.Go(func() { res.n, res.err = readStream(fast, 64<<10, 0) })
			if err := writeStream(f, size, 3); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			if res.err != nil || res.n != size {
				t.Fatalf("fast reader: %+v", res)
			}
			n, err := readStream(slow, 64<<10, 0)
			if !errors.Is(err, ErrFellBehind) || !strings.Contains(err.Error(), tc.why) || n != 0 {
				t.Errorf("slow reader: %d bytes, %v", n, err)
			}
		})
	}
}

// TestFanoutReaderErrors: a reader that fails mid-stream is dropped;
// the writer no longer waits or spills for it, and the others get the
// whole stream.
func TestFanoutReaderErrors(t *testing.T) {
	const size, budget, chunk = 8 << 20, 128 << 10, 16 << 10
	f := newFanout(budget, chunk, t.TempDir())
	defer f.Close()
	failing := f.newReader()
	readers := []*fanoutReader{f.newReader(), f.newReader(), f.newReader()}
	results := make([]readResult, len(readers))
	var wg sync.WaitGroup
	for i, r := range readers {
		wg.Go(func() { results[i].n, results[i].err = readStream(r, 16<<10, 0) })
	}
	cause := errors.New("connection to node 4 lost")
	wg.Go(func() {
		buf := make([]byte, 8<<10)
		for failedAt := 0; failedAt < 1<<20; {
			n, err := failing.Read(buf)
			if err != nil {
				t.Errorf("failing reader before it failed: %v", err)
				return
			}
			failedAt += n
		}
		failing.CloseWithError(cause)
		if _, err := failing.Read(buf); err != cause {
			t.Errorf("after failing, Read says %v", err)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, r := range f.readers {
			if r == failing {
				t.Error("the writer still counts the failed reader")
			}
		}
	})
	if err := writeStream(f, size, 4); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, res := range results {
		if res.err != nil || res.n != size {
			t.Errorf("reader %d: %+v", i, res)
		}
	}
}

// TestFanoutWriterFails: the writer's error reaches every reader, at
// once; and a writer whose readers are all gone is told so.
func TestFanoutWriterFails(t *testing.T) {
	f := newFanout(64<<10, 16<<10, "")
	defer f.Close()
	r := f.newReader()
	buf := make([]byte, 8<<10)
	pattern(0, buf)
	if _, err := f.Write(buf); err != nil {
		t.Fatal(err)
	}
	cause := errors.New("image.raw: read error at offset 0x2000")
	f.CloseWrite(cause)
	if _, err := r.Read(buf); err != cause {
		t.Errorf("Read after the writer failed: %v", err)
	}

	g := newFanout(64<<10, 16<<10, "")
	defer g.Close()
	a, b := g.newReader(), g.newReader()
	a.Close()
	b.CloseWithError(errors.New("gone"))
	if _, err := g.Write(buf); !errors.Is(err, errNoReaders) {
		t.Errorf("Write with no readers: %v", err)
	}
}

// TestFanoutMemoryBound: many readers of a long stream cost the ring and
// nothing per chunk: the heap grows by no more than the budget while 64
// MiB pass through eight readers.
func TestFanoutMemoryBound(t *testing.T) {
	const size, budget, chunk, readers = 64 << 20, 256 << 10, 16 << 10, 8
	f := newFanout(budget, chunk, t.TempDir())
	defer f.Close()
	bufs := make([][]byte, readers)
	rs := make([]*fanoutReader, readers)
	for i := range rs {
		rs[i], bufs[i] = f.newReader(), make([]byte, 32<<10)
	}
	src := make([]byte, 64<<10)
	for i := range src {
		src[i] = byte(i * 7)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	counts := make([]int64, readers)
	for i, r := range rs {
		wg.Go(func() {
			for {
				n, err := r.Read(bufs[i])
				counts[i] += int64(n)
				if err != nil {
					return
				}
			}
		})
	}
	for off := 0; off < size; off += len(src) {
		if _, err := f.Write(src); err != nil {
			t.Fatal(err)
		}
	}
	f.CloseWrite(nil)
	wg.Wait()
	runtime.ReadMemStats(&after)
	for i, n := range counts {
		if n != size {
			t.Errorf("reader %d read %d bytes", i, n)
		}
	}
	grew := after.TotalAlloc - before.TotalAlloc
	if st := f.stats(); st.peakHeld > budget || grew > budget+256<<10 {
		t.Errorf("ring peak %d, heap allocated %d while streaming %d bytes to %d readers; budget %d", st.peakHeld, grew, size, readers, budget)
	}
}
