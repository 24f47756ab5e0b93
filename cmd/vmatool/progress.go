package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// meter counts processed bytes toward a total and renders them as bytes,
// rate and ETA. It satisfies vma.Progress.
type meter struct {
	label string
	total int64
	done  atomic.Int64
	sent  atomic.Int64 // bytes on the wire, where that differs from done
	start time.Time
}

// Update adds n processed bytes; it may be called from any goroutine.
func (m *meter) Update(n int64) { m.done.Add(n) }

func (m *meter) text(long bool) string {
	done := m.done.Load()
	el := time.Since(m.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(done) / el
	}
	var b strings.Builder
	b.WriteString(m.label)
	if long || m.total <= 0 {
		fmt.Fprintf(&b, " %s", humanBytes(done))
	}
	if m.total > 0 {
		if long {
			fmt.Fprintf(&b, " / %s", humanBytes(m.total))
		}
		fmt.Fprintf(&b, " %d%%", min(done*100/m.total, 100))
	}
	fmt.Fprintf(&b, " %s/s", humanBytes(int64(rate)))
	if m.total > 0 && rate > 0 && done < m.total {
		eta := time.Duration(float64(m.total-done) / rate * float64(time.Second))
		fmt.Fprintf(&b, " ETA %s", eta.Round(time.Second))
	}
	if sent := m.sent.Load(); sent > 0 {
		fmt.Fprintf(&b, " (sent %s)", humanBytes(sent))
	}
	return b.String()
}

// display redraws one status line, ten times a second, for one meter or
// several (deploy to many targets). It draws only on a terminal and not
// with --quiet; otherwise its meters just count.
type display struct {
	w      io.Writer // nil: draw nothing
	mu     sync.Mutex
	meters []*meter
	stop   chan struct{}
	wg     sync.WaitGroup
}

func newDisplay(s *streams, quiet bool) *display {
	d := &display{}
	if quiet || !s.errisTTY {
		return d
	}
	d.w, d.stop = s.err, make(chan struct{})
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				d.draw()
			case <-d.stop:
				return
			}
		}
	}()
	return d
}

// add starts a meter on the display.
func (d *display) add(label string, total int64) *meter {
	m := &meter{label: label, total: total, start: time.Now()}
	d.mu.Lock()
	d.meters = append(d.meters, m)
	d.mu.Unlock()
	return m
}

// remove takes a finished meter off the line.
func (d *display) remove(m *meter) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, x := range d.meters {
		if x == m {
			d.meters = append(d.meters[:i], d.meters[i+1:]...)
			return
		}
	}
}

// println prints a line above the status line.
func (d *display) println(format string, args ...any) {
	if d.w == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.w, "\r\033[K"+format+"\n", args...)
}

func (d *display) draw() {
	d.mu.Lock()
	defer d.mu.Unlock()
	parts := make([]string, len(d.meters))
	for i, m := range d.meters {
		parts[i] = m.text(len(d.meters) == 1)
	}
	fmt.Fprintf(d.w, "\r\033[K%s", strings.Join(parts, " | "))
}

// finish draws the last state and ends the line.
func (d *display) finish() {
	if d.stop == nil {
		return
	}
	close(d.stop)
	d.wg.Wait()
	d.draw()
	fmt.Fprintln(d.w)
	d.stop = nil
}

// singleMeter is a display with one meter, for commands that do one job.
type singleMeter struct {
	*meter
	d *display
}

func newMeter(s *streams, quiet bool, label string, total int64) singleMeter {
	d := newDisplay(s, quiet)
	return singleMeter{d.add(label, total), d}
}

// Finish stops drawing and ends the line.
func (m singleMeter) Finish() { m.d.finish() }

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
