package main

import (
	"fmt"
	"time"

	"github.com/vmatool/vmatool/internal/deploy"
)

// deployRenderer shows deploy's events: each step as a line, and a status
// line per target (its step; bytes, rate and ETA while the archive goes
// out; the node's own restore progress) that the display redraws on a
// terminal, or prints every few seconds with --progress. Warnings go to
// standard error always. deploy.Run calls it from one goroutine at a
// time.
type deployRenderer struct {
	s    *streams
	d    *display
	rows map[string]*targetRow
	list []*targetRow
}

func newDeployRenderer(s *streams, quiet bool) *deployRenderer {
	return &deployRenderer{s: s, d: newDisplay(s, quiet), rows: map[string]*targetRow{}}
}

// targetRow is a target's status line. Its fields change under the
// display's lock.
type targetRow struct {
	name    string
	step    deploy.Step
	failed  deploy.Step // the last step that failed
	start   time.Time   // of the target's first event
	sending time.Time   // of its first bytes
	last    time.Time   // of its last bytes
	read    int64       // source bytes processed
	sent    int64       // bytes on the wire
	total   int64
	restore float64 // the node's restore progress, or -1
}

// status reads "web1 transfer 1.0 GiB / 4.0 GiB 25% 512.0 MiB/s ETA 6s
// sent 256.0 MiB" while the archive goes out, and "web1 restore 42% sent
// 1.0 GiB" while the node restores it; when both happen at once
// (ssh-stream), the node's progress comes last: "restored 20%".
func (t *targetRow) status(now time.Time) (string, []field) {
	sending := t.total > 0 && t.read < t.total && (t.step == deploy.StepTransfer || t.step == deploy.StepRestore)
	restoring := t.step == deploy.StepRestore && t.restore >= 0
	step := string(t.step)
	if restoring && !sending {
		step += fmt.Sprintf(" %.0f%%", t.restore)
	}
	var fs []field
	if step != "" {
		fs = append(fs, field{step, keepStep})
	}
	if sending {
		fs = append(fs, byteFields(t.read, t.total, now.Sub(t.sending))...)
	}
	if t.sent > 0 {
		fs = append(fs, field{"sent " + humanBytes(t.sent), keepSent})
	}
	if restoring && sending {
		fs = append(fs, field{fmt.Sprintf("restored %.0f%%", t.restore), keepRestore})
	}
	return t.name, fs
}

// summary is the target's last line, after zstd's: "web1: done, 34.21%
// (4.0 GiB => 1.4 GiB sent), 42.1s, 97.0 MiB/s", the rate that of the
// transfer.
func (t *targetRow) summary(now time.Time) string {
	line := t.name + ": done"
	if t.failed != "" {
		line = t.name + ": " + string(t.failed) + " failed"
	}
	if t.read > 0 || t.sent > 0 {
		line += ", "
		if t.read > 0 {
			line += fmt.Sprintf("%.2f%% ", float64(t.sent)*100/float64(t.read))
		}
		line += fmt.Sprintf("(%s => %s sent)", humanBytes(t.read), humanBytes(t.sent))
	}
	line += ", " + formatElapsed(now.Sub(t.start))
	if el := t.last.Sub(t.sending); t.read > 0 && el > 0 {
		line += ", " + humanBytes(int64(float64(t.read)/el.Seconds())) + "/s"
	}
	return line
}

// row returns the target's row, adding it at its first event.
func (r *deployRenderer) row(name string) *targetRow {
	t := r.rows[name]
	if t == nil {
		t = &targetRow{name: name, start: r.d.now(), restore: -1}
		r.rows[name] = t
		r.list = append(r.list, t)
		r.d.add(t)
	}
	return t
}

func (r *deployRenderer) event(e deploy.Event) {
	t := r.row(e.TargetName())
	switch e := e.(type) {
	case deploy.StepStarted:
		r.d.update(func() { t.step = e.Step })
		r.d.println("%s: %s", e.Target, e.Detail)
	case deploy.StepFinished:
		if e.Err != nil {
			r.d.update(func() { t.failed = e.Step })
			r.d.println("%s: %s failed: %s", e.Target, e.Step, oneLine(e.Err.Error()))
		}
	case deploy.BytesSent:
		now := r.d.now()
		r.d.update(func() {
			if t.sending.IsZero() {
				t.sending = now
			}
			t.last, t.read, t.sent, t.total = now, e.Read, e.Sent, e.Total
		})
	case deploy.RestoreProgress:
		r.d.update(func() { t.restore = e.Percent })
	case deploy.Warning:
		if r.d.on() {
			r.d.println("vmatool deploy: %s: %s", e.Target, e.Message)
		} else {
			fmt.Fprintf(r.s.err, "vmatool deploy: %s: %s\n", e.Target, e.Message)
		}
	}
}

// finish replaces the status lines with each target's summary.
func (r *deployRenderer) finish() {
	if !r.d.on() {
		return
	}
	now := r.d.now()
	var lines []string
	r.d.update(func() {
		for _, t := range r.list {
			lines = append(lines, t.summary(now))
		}
	})
	r.d.finish(lines...)
}
