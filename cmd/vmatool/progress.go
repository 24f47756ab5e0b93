package main

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// meter draws one progress line (bytes, rate, ETA) on a terminal, ten times
// a second. When stderr is not a terminal, or with --quiet, it draws
// nothing but still counts.
type meter struct {
	label string
	total int64
	done  atomic.Int64
	start time.Time
	w     io.Writer
	stop  chan struct{}
	wg    sync.WaitGroup
}

func newMeter(s *streams, quiet bool, label string, total int64) *meter {
	m := &meter{label: label, total: total, start: time.Now()}
	if quiet || !s.errisTTY {
		return m
	}
	m.w, m.stop = s.err, make(chan struct{})
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				m.draw()
			case <-m.stop:
				return
			}
		}
	}()
	return m
}

// Update adds n processed bytes; it satisfies vma.Progress.
func (m *meter) Update(n int64) { m.done.Add(n) }

// Finish stops drawing and ends the line.
func (m *meter) Finish() {
	if m.stop == nil {
		return
	}
	close(m.stop)
	m.wg.Wait()
	m.draw()
	fmt.Fprintln(m.w)
	m.stop = nil
}

func (m *meter) draw() {
	done := m.done.Load()
	el := time.Since(m.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(done) / el
	}
	line := fmt.Sprintf("%s %s", m.label, humanBytes(done))
	if m.total > 0 {
		line += fmt.Sprintf(" / %s (%d%%)", humanBytes(m.total), done*100/m.total)
	}
	line += fmt.Sprintf("  %s/s", humanBytes(int64(rate)))
	if m.total > 0 && rate > 0 && done < m.total {
		eta := time.Duration(float64(m.total-done) / rate * float64(time.Second))
		line += "  ETA " + eta.Round(time.Second).String()
	}
	fmt.Fprintf(m.w, "\r\033[K%s", line)
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

// countingReader reports bytes read to a meter.
type countingReader struct {
	r io.Reader
	m *meter
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.m.Update(int64(n))
	return n, err
}
