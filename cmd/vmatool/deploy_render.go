package main

import (
	"fmt"

	"github.com/vmatool/vmatool/internal/deploy"
)

// deployRenderer shows deploy's events: steps above a status line of
// progress meters (on a terminal, without --quiet), warnings on standard
// error always. deploy.Run calls it from one goroutine at a time.
type deployRenderer struct {
	s      *streams
	d      *display
	meters map[string]*meter
}

func newDeployRenderer(s *streams, quiet bool) *deployRenderer {
	return &deployRenderer{s: s, d: newDisplay(s, quiet), meters: map[string]*meter{}}
}

func (r *deployRenderer) event(e deploy.Event) {
	switch e := e.(type) {
	case deploy.StepStarted:
		r.d.println("%s: %s", e.Target, e.Detail)
	case deploy.StepFinished:
		if e.Err != nil {
			r.d.println("%s: %s failed: %s", e.Target, e.Step, oneLine(e.Err.Error()))
		}
	case deploy.BytesSent:
		m := r.meters[e.Target]
		if m == nil {
			m = r.d.add(e.Target, e.Total)
			r.meters[e.Target] = m
		}
		m.done.Store(e.Read)
		m.sent.Store(e.Sent)
	case deploy.Warning:
		if r.d.w != nil {
			r.d.println("vmatool deploy: %s: %s", e.Target, e.Message)
		} else {
			fmt.Fprintf(r.s.err, "vmatool deploy: %s: %s\n", e.Target, e.Message)
		}
	}
}

// finish ends the status line.
func (r *deployRenderer) finish() { r.d.finish() }
