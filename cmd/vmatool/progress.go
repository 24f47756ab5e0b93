package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Progress goes to standard error, in one of three ways:
//   - on a terminal (without --quiet), a block of status lines, one per
//     job, redrawn in place ten times a second. Each line is fitted to the
//     terminal's width (fit), so none wraps, which keeps the cursor
//     arithmetic of the redraw exact: one line is redrawn with \r and
//     clear-to-end-of-line, several by going up to the block's first line;
//     lines printed meanwhile (deploy's steps) go above the block.
//   - off a terminal with --progress, a plain line per job every five
//     seconds, for logs;
//   - otherwise nothing.
//
// A job that ends well ends with a summary line like zstd's
// (summaryLine), where progress is shown.
//
// mpb (github.com/vbauerster/mpb/v8) was weighed for this and not taken:
// it redraws by printing each line with its newline and moving the cursor
// back up, a newline per line per redraw even for a single line; it fits
// a line by cutting decorators left to right rather than dropping the
// least useful fields first; it has no plain periodic lines for a log;
// and it brings five modules. What is left to write is this file.

// How often the display draws.
const (
	liveEvery  = 100 * time.Millisecond // on a terminal
	linesEvery = 5 * time.Second        // --progress off a terminal
)

// defaultWidth is the width assumed when the terminal does not say.
const defaultWidth = 80

// displayMode is how a display draws.
type displayMode int

const (
	drawOff   displayMode = iota // counts only
	drawLive                     // a block redrawn in place
	drawLines                    // plain lines every linesEvery
)

// row is a line of the display.
type row interface {
	// status returns the row's label and fields at now.
	status(now time.Time) (label string, fields []field)
}

// display draws rows on standard error. Rows change under its lock
// (update), and draw from its goroutine.
type display struct {
	mode displayMode
	w    io.Writer
	size func() (width, height int)
	now  func() time.Time

	mu    sync.Mutex
	rows  []row
	drawn int // lines of the live block on the screen; the cursor ends its last
	stop  chan struct{}
	wg    sync.WaitGroup
}

// newDisplay starts a display on s's standard error: live on a terminal,
// plain lines off one with --progress, and nothing when quiet, unless
// --progress asked (--quiet and --progress together are refused when
// parsing; what else passes quiet, such as --json, yields to --progress).
func newDisplay(s *streams, quiet bool) *display {
	d := &display{w: s.err, size: s.errSize, now: s.now}
	if d.now == nil {
		d.now = time.Now
	}
	switch {
	case quiet && !s.progress:
	case s.errisTTY:
		d.mode = drawLive
	case s.progress:
		d.mode = drawLines
	}
	if d.mode == drawOff {
		return d
	}
	every := liveEvery
	if d.mode == drawLines {
		every = linesEvery
	}
	newTicker := s.ticker
	if newTicker == nil {
		newTicker = func(every time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(every)
			return t.C, t.Stop
		}
	}
	c, stopTicker := newTicker(every)
	d.stop = make(chan struct{})
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer stopTicker()
		for {
			select {
			case <-c:
				d.tick()
			case <-d.stop:
				return
			}
		}
	}()
	return d
}

// on reports whether the display shows anything.
func (d *display) on() bool { return d.mode != drawOff }

// add puts a row at the bottom of the display, and shows it at once
// on a terminal rather than at the next tick.
func (d *display) add(r row) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rows = append(d.rows, r)
	if d.mode == drawLive {
		d.redraw()
	}
}

// update changes rows under the display's lock.
func (d *display) update(f func()) {
	d.mu.Lock()
	f()
	d.mu.Unlock()
}

// println prints a line above a live block, or as one of the plain lines.
func (d *display) println(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch d.mode {
	case drawLive:
		var b strings.Builder
		d.erase(&b)
		fmt.Fprintf(&b, format+"\n", args...)
		io.WriteString(d.w, b.String())
		d.redraw()
	case drawLines:
		fmt.Fprintf(d.w, format+"\n", args...)
	}
}

func (d *display) tick() {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch d.mode {
	case drawLive:
		d.redraw()
	case drawLines:
		d.printRows()
	}
}

// termSize is the terminal's width and height; 0 for a height unknown.
func (d *display) termSize() (int, int) {
	w, h := 0, 0
	if d.size != nil {
		w, h = d.size()
	}
	if w <= 0 {
		w = defaultWidth
	}
	return w, max(h, 0)
}

// redraw draws the live block over the one on the screen. The cursor
// starts and ends at the end of the block's last line, so a redraw
// writes a newline only between lines, never after the last. Called
// with d.mu held.
func (d *display) redraw() {
	width, height := d.termSize()
	now := d.now()
	rows := d.rows
	var lines []string
	// Cursor-up stops at the screen's top: a block taller than the
	// screen could not be redrawn in place. The oldest rows give way.
	if height > 1 && len(rows) > height-1 {
		hidden := len(rows) - (height - 2)
		lines = append(lines, fit("", []field{{fmt.Sprintf("(%d more above)", hidden), keepStep}}, width))
		rows = rows[hidden:]
	}
	for _, r := range rows {
		label, fields := r.status(now)
		lines = append(lines, fit(label, fields, width))
	}
	if len(lines) == 0 && d.drawn == 0 {
		return
	}
	var b strings.Builder
	b.WriteString("\r")
	if d.drawn > 1 {
		fmt.Fprintf(&b, "\033[%dA", d.drawn-1)
	}
	for i, l := range lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("\033[K")
		b.WriteString(l)
	}
	if len(lines) < d.drawn {
		b.WriteString("\033[J") // a row went away: clear what it left
	}
	d.drawn = len(lines)
	io.WriteString(d.w, b.String())
}

// erase clears the live block and leaves the cursor where it began.
// Called with d.mu held.
func (d *display) erase(b *strings.Builder) {
	if d.drawn == 0 {
		return
	}
	b.WriteString("\r")
	if d.drawn > 1 {
		fmt.Fprintf(b, "\033[%dA", d.drawn-1)
	}
	b.WriteString("\033[J")
	d.drawn = 0
}

// printRows prints every row as a plain line, unfitted. Called with d.mu
// held.
func (d *display) printRows() {
	now := d.now()
	var b strings.Builder
	for _, r := range d.rows {
		label, fields := r.status(now)
		b.WriteString(join(label, fields) + "\n")
	}
	io.WriteString(d.w, b.String())
}

// finish stops the display. With final lines, they replace the rows (a
// summary); without, the rows' last state stays (after a failure, it
// shows how far the job got). Only the first call does anything.
func (d *display) finish(final ...string) {
	if d.stop == nil {
		return
	}
	close(d.stop)
	d.wg.Wait()
	d.stop = nil
	d.mu.Lock()
	defer d.mu.Unlock()
	var b strings.Builder
	switch {
	case d.mode == drawLive && final == nil:
		d.redraw()
		if d.drawn > 0 {
			b.WriteString("\n")
		}
	case d.mode == drawLive:
		d.erase(&b)
	case final == nil:
		d.printRows()
	}
	for _, l := range final {
		b.WriteString(l + "\n")
	}
	d.drawn = 0
	io.WriteString(d.w, b.String())
}

// meter counts processed bytes toward a total. It satisfies vma.Progress.
type meter struct {
	label string
	total int64 // 0 when unknown
	done  atomic.Int64
	start time.Time
}

// Update adds n processed bytes; it may be called from any goroutine.
func (m *meter) Update(n int64) { m.done.Add(n) }

func (m *meter) status(now time.Time) (string, []field) {
	return m.label, byteFields(m.done.Load(), m.total, now.Sub(m.start))
}

// singleMeter is a display with one meter, for commands that do one job.
type singleMeter struct {
	*meter
	d *display
}

func newMeter(s *streams, quiet bool, label string, total int64) singleMeter {
	d := newDisplay(s, quiet)
	m := &meter{label: label, total: total, start: d.now()}
	d.add(m)
	return singleMeter{m, d}
}

// Clear stops drawing and erases the progress line, for a command whose
// own output reports the outcome (verify's line on a terminal).
func (m singleMeter) Clear() {
	if m.d != nil {
		m.d.finish([]string{}...)
	}
}

// Finish stops drawing, leaving the last state on the screen. It may be
// called more than once, and after Done.
func (m singleMeter) Finish() {
	if m.d != nil {
		m.d.finish()
	}
}

// Done ends a job that succeeded: the summary line replaces the status
// line. out is the bytes written (negative: no output), name where they
// went.
func (m singleMeter) Done(out int64, name string) {
	if m.d == nil || !m.d.on() {
		m.Finish()
		return
	}
	m.d.finish(summaryLine(m.label, m.done.Load(), out, name, m.d.now().Sub(m.start)))
}

// summaryLine is how a finished job reports, after zstd's "file :
// 38.12% (1.00 GiB => 390 MiB, file.zst)", with the time taken and the
// rate of the input:
//
//	pack: 38.12% (1.0 GiB => 390.3 MiB, a.vma.zst), 2.5s, 409.6 MiB/s
//
// out < 0 means the job wrote nothing (verify): "verify: 1.0 GiB
// (a.vma.zst), 2.5s, 409.6 MiB/s".
func summaryLine(label string, in, out int64, name string, elapsed time.Duration) string {
	if name == "-" {
		name = "standard output"
	}
	var b strings.Builder
	b.WriteString(label + ": ")
	if out >= 0 {
		if in > 0 {
			fmt.Fprintf(&b, "%.2f%% ", float64(out)*100/float64(in))
		}
		fmt.Fprintf(&b, "(%s => %s", humanBytes(in), humanBytes(out))
		if name != "" {
			b.WriteString(", " + name)
		}
		b.WriteString(")")
	} else {
		b.WriteString(humanBytes(in))
		if name != "" {
			b.WriteString(" (" + name + ")")
		}
	}
	b.WriteString(", " + formatElapsed(elapsed))
	if elapsed > 0 {
		b.WriteString(", " + humanBytes(int64(float64(in)/elapsed.Seconds())) + "/s")
	}
	return b.String()
}

// formatElapsed is a duration as a person reads it: 2.5s, 1m5s, 1h2m3s.
func formatElapsed(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

// countingWriter counts the bytes written through it, for a summary.
type countingWriter struct {
	w io.Writer
	n atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
