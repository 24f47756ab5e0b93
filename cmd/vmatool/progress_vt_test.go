package main

import (
	"bytes"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// vt is enough of a terminal to check what the display draws: printable
// characters with auto-wrap at the last column, \r, \n (as a tty's ONLCR
// turns it into a carriage return and a line feed), and the escapes
// ESC[K (clear to the end of the line), ESC[nA (cursor up) and ESC[J
// (clear to the end of the screen). Anything else fails the test. It
// counts the characters that wrapped to a new line and the lines that
// scrolled off the top.
type vt struct {
	t        *testing.T
	w, h     int
	screen   [][]rune
	x, y     int
	wrapped  int
	scrolled int
	esc      []byte // an escape sequence under way
}

func newVT(t *testing.T, w, h int) *vt {
	v := &vt{t: t, w: w, h: h}
	for range h {
		v.screen = append(v.screen, v.blank())
	}
	return v
}

func (v *vt) blank() []rune { return []rune(strings.Repeat(" ", v.w)) }

func (v *vt) lineFeed() {
	if v.y == v.h-1 {
		v.screen = append(v.screen[1:], v.blank())
		v.scrolled++
		return
	}
	v.y++
}

func (v *vt) Write(p []byte) (int, error) {
	size := len(p)
	for len(p) > 0 {
		r, n := utf8.DecodeRune(p)
		p = p[n:]
		if v.esc != nil {
			v.esc = append(v.esc, string(r)...)
			if len(v.esc) == 1 {
				if r != '[' {
					v.t.Fatalf("escape ESC %q", r)
				}
				continue
			}
			if r >= '0' && r <= '9' {
				continue
			}
			arg := 1
			if len(v.esc) > 2 {
				arg, _ = strconv.Atoi(string(v.esc[1 : len(v.esc)-1]))
			}
			switch r {
			case 'K':
				for i := min(v.x, v.w-1); i < v.w; i++ {
					v.screen[v.y][i] = ' '
				}
			case 'A':
				v.y = max(0, v.y-arg)
			case 'J':
				for i := min(v.x, v.w-1); i < v.w; i++ {
					v.screen[v.y][i] = ' '
				}
				for y := v.y + 1; y < v.h; y++ {
					v.screen[y] = v.blank()
				}
			default:
				v.t.Fatalf("escape ESC%s not understood", v.esc)
			}
			v.esc = nil
			continue
		}
		switch r {
		case '\033':
			v.esc = []byte{}
		case '\r':
			v.x = 0
		case '\n':
			v.x = 0
			v.lineFeed()
		default:
			if r < ' ' {
				v.t.Fatalf("control character %q", r)
			}
			if v.x == v.w {
				v.wrapped++
				v.x = 0
				v.lineFeed()
			}
			v.screen[v.y][v.x] = r
			v.x++
		}
	}
	return size, nil
}

// lines returns the screen's lines up to the last one that is not
// blank, without trailing spaces.
func (v *vt) lines() []string {
	var out []string
	for _, l := range v.screen {
		out = append(out, strings.TrimRight(string(l), " "))
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

// fakeErr is a standard error that tests read while the display runs:
// it counts the display's writes (one per redraw), so a test can wait
// for the redraw a tick asked for.
type fakeErr struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	read   int // bytes handed out by next
}

func (f *fakeErr) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	return f.buf.Write(p)
}

// waitWrites waits until n writes have been made.
func (f *fakeErr) waitWrites(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		got := f.writes
		f.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the display made %d writes, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// next returns what was written since the last call.
func (f *fakeErr) next() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.buf.String()[f.read:]
	f.read = f.buf.Len()
	return s
}

func (f *fakeErr) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buf.String()
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// displayRig is a display's surroundings under a test's control: its
// standard error, size, clock and ticker.
type displayRig struct {
	s      *streams
	err    *fakeErr
	clock  *fakeClock
	ticks  chan time.Time
	every  []time.Duration // the intervals tickers were asked for
	writes int             // writes to wait for at the next tick
}

func newDisplayRig(tty bool, width, height int, progress bool) *displayRig {
	r := &displayRig{err: &fakeErr{}, clock: &fakeClock{now: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)},
		ticks: make(chan time.Time)}
	r.s = &streams{in: strings.NewReader(""), out: &bytes.Buffer{}, err: r.err, errisTTY: tty,
		now: r.clock.Now, getenv: func(string) string { return "" }, progress: progress,
		errSize: func() (int, int) { return width, height },
		ticker: func(d time.Duration) (<-chan time.Time, func()) {
			r.every = append(r.every, d)
			return r.ticks, func() {}
		}}
	return r
}

// tick moves the clock by d, then ticks and waits for the redraw.
func (r *displayRig) tick(t *testing.T, d time.Duration) {
	t.Helper()
	r.clock.advance(d)
	r.syncWrites()
	r.ticks <- r.clock.Now()
	r.writes++
	r.err.waitWrites(t, r.writes)
}

// syncWrites takes writes made outside ticks (println) into account.
func (r *displayRig) syncWrites() {
	r.err.mu.Lock()
	r.writes = r.err.writes
	r.err.mu.Unlock()
}
