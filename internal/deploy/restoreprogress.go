package deploy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vmatool/vmatool/internal/pve"
)

// RestoreProgress reports how far the node's own restore has got, as
// the node reports it: qmrestore prints the "progress N% (read B bytes,
// duration S sec)" lines of the vma extract -v it runs, which also fill
// a restore task's log, and a create that imports disks logs qemu-img's
// "transferred X of Y (N.NN%)" (qemu-server src/PVE/QemuServer.pm). A
// restore of several disks may count from 0 to 100 more than once.
type RestoreProgress struct {
	Target  string
	Percent float64
}

func (e RestoreProgress) TargetName() string { return e.Target }

// restorePercent reads the percentage from a line of restore output, if
// the line is one of the two kinds RestoreProgress describes.
func restorePercent(line string) (float64, bool) {
	line = strings.TrimSpace(line)
	var num string
	switch {
	case strings.HasPrefix(line, "progress "):
		num, _, _ = strings.Cut(line[len("progress "):], "%")
		if len(num) == len(line)-len("progress ") {
			return 0, false // no "%"
		}
	case strings.HasPrefix(line, "transferred ") && strings.HasSuffix(line, "%)"):
		i := strings.LastIndexByte(line, '(')
		if i < 0 {
			return 0, false
		}
		num = line[i+1 : len(line)-2]
	default:
		return 0, false
	}
	p, err := strconv.ParseFloat(num, 64)
	if err != nil || p < 0 || p > 100 {
		return 0, false
	}
	return p, true
}

// maxRestoreLine bounds the bytes kept of a line of restore output; a
// progress line is far shorter, and a longer line is no progress line.
const maxRestoreLine = 512

// restoreLines turns the output of a restore command into RestoreProgress
// events, one per change of the percentage. Each of a command's streams
// needs its own: they are written from different goroutines.
type restoreLines struct {
	j    *job
	line []byte
	long bool // the current line outgrew maxRestoreLine
	last *restoreLast
}

// restoreLast is the last percentage a job reported, shared by the
// streams of one command so that a line on either counts once.
type restoreLast struct {
	mu sync.Mutex
	p  float64
	// vma is the last line vma printed of its own failure ("vma: can't
	// read vma header - got EOF"): a real node's qmrestore prints it with
	// the task's output on standard output, and its error on standard
	// error only says how vma ended ("got signal 5").
	vma string
}

// vmaReason is the line of vma's own failure, if it printed one.
func (r *restoreLast) vmaReason() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.vma
}

func (r *restoreLast) report(j *job, p float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p == r.p {
		return
	}
	r.p = p
	j.emit(RestoreProgress{Target: j.t.Name, Percent: p})
}

// restoreOutput returns writers for a restore command's standard output
// and error. qmrestore prints the progress lines on standard output; the
// error stream is read as well, since that is where a shell pipeline's
// other commands and Proxmox's own tools may put theirs.
//
// withReason adds vma's own error line, if it printed one, to the error of
// the command that failed.
func (j *job) restoreOutput() (stdout, stderr io.Writer, withReason func(error) error) {
	last := &restoreLast{p: -1}
	withReason = func(err error) error {
		if r := last.vmaReason(); r != "" {
			return fmt.Errorf("%w (%s)", err, r)
		}
		return err
	}
	return &restoreLines{j: j, last: last}, &restoreLines{j: j, last: last}, withReason
}

func (w *restoreLines) Write(p []byte) (int, error) {
	for rest := p; len(rest) > 0; {
		i := bytes.IndexAny(rest, "\r\n")
		chunk := rest
		if i >= 0 {
			chunk = rest[:i]
		}
		if len(w.line)+len(chunk) > maxRestoreLine {
			w.long = true
		} else if !w.long {
			w.line = append(w.line, chunk...)
		}
		if i < 0 {
			break
		}
		if pct, ok := restorePercent(string(w.line)); ok && !w.long {
			w.last.report(w.j, pct)
		} else if bytes.HasPrefix(w.line, []byte("vma: ")) && !w.long {
			w.last.mu.Lock()
			w.last.vma = string(w.line)
			w.last.mu.Unlock()
		}
		w.line, w.long = w.line[:0], false
		rest = rest[i+1:]
	}
	return len(p), nil
}

// restoreLogPage is how many task log lines one request asks for.
const restoreLogPage = 500

// waitRestoreTask waits for a restore or create task as waitTask does,
// reading its log meanwhile for RestoreProgress: each time the state is
// asked, and once more after the task stopped, for its last lines.
func (j *job) waitRestoreTask(ctx context.Context, upid pve.UPID) error {
	poll := j.opts.PollInterval
	if poll <= 0 {
		poll = pve.DefaultPollInterval
	}
	f := &taskLogFollower{j: j, upid: upid, last: &restoreLast{p: -1}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(poll)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				f.read(ctx)
			}
		}
	}()
	err := j.waitTask(ctx, upid)
	close(stop)
	wg.Wait()
	if ctx.Err() == nil {
		f.read(ctx)
	}
	return err
}

// taskLogFollower reads a task's log from where it last stopped.
type taskLogFollower struct {
	j    *job
	upid pve.UPID
	next int // lines read so far
	last *restoreLast
}

// read reads the lines logged since the last read. A failed read is
// left to the next one: the task's state, not its log, decides the
// outcome.
func (f *taskLogFollower) read(ctx context.Context) {
	for {
		lines, err := f.j.api.TaskLog(ctx, f.upid, f.next, restoreLogPage)
		if err != nil || len(lines) == 0 {
			return
		}
		// An empty log reads as one line "no content"
		// (pve-common PVE/Tools.pm dump_logfile); it is not a line to skip.
		if f.next == 0 && len(lines) == 1 && lines[0].T == "no content" {
			return
		}
		for _, l := range lines {
			if pct, ok := restorePercent(l.T); ok {
				f.last.report(f.j, pct)
			}
			f.next = max(f.next, l.N)
		}
		if len(lines) < restoreLogPage {
			return
		}
	}
}
