package pve

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	proxmox "github.com/luthermonson/go-proxmox"
)

// DefaultPollInterval is how often WaitTask asks when given no interval.
const DefaultPollInterval = time.Second

// logTailLines is how many task log lines a TaskError carries.
const logTailLines = 20

// pollRetries is how many polls in a row WaitTask lets fail on a network
// error or server hiccup before it gives up: a restore runs for minutes
// and does not stop because one poll was lost.
const pollRetries = 3

// TaskStatus is the state of a task, from
// GET /nodes/{node}/tasks/{upid}/status.
type TaskStatus struct {
	UPID       UPID
	Status     string // "running" or "stopped"
	ExitStatus string // once stopped: "OK", "WARNINGS: n" or an error message
	User       string // the bare user; a token's name is not included
	PID        uint64
	StartTime  time.Time
}

// Running reports whether the task has not stopped yet.
func (s *TaskStatus) Running() bool { return s.Status != proxmox.TaskStopped }

// Succeeded reports whether the task stopped with "OK" or "WARNINGS: n",
// the two exit statuses Proxmox itself counts as success.
func (s *TaskStatus) Succeeded() bool {
	return !s.Running() && (s.ExitStatus == proxmox.TaskExitOK || strings.HasPrefix(s.ExitStatus, "WARNINGS: "))
}

func (c *Client) task(upid UPID) (*proxmox.Task, error) {
	if upid.IsZero() {
		return nil, fmt.Errorf("%w: empty", ErrBadUPID)
	}
	if err := checkName("node", upid.Node); err != nil {
		return nil, err
	}
	return proxmox.NewTask(proxmox.UPID(upid.String()), c.api), nil
}

// TaskStatus returns the state of task upid, asking the node it runs on.
func (c *Client) TaskStatus(ctx context.Context, upid UPID) (*TaskStatus, error) {
	t, err := c.task(upid)
	if err != nil {
		return nil, err
	}
	what := "GET /nodes/" + upid.Node + "/tasks/" + upid.String() + "/status"
	if err := c.call(ctx, what, func(ctx context.Context) error { return t.Ping(ctx) }); err != nil {
		return nil, err
	}
	return &TaskStatus{UPID: upid, Status: t.Status, ExitStatus: t.ExitStatus, User: t.User, PID: t.PID, StartTime: t.StartTime}, nil
}

// LogLine is one line of a task log; N counts from 1.
type LogLine struct {
	N int
	T string
}

// TaskLog returns up to limit lines (0: all) of the log of task upid from
// line start (0-based). An empty log is one line "no content".
func (c *Client) TaskLog(ctx context.Context, upid UPID, start, limit int) ([]LogLine, error) {
	t, err := c.task(upid)
	if err != nil {
		return nil, err
	}
	var log proxmox.Log
	what := "GET /nodes/" + upid.Node + "/tasks/" + upid.String() + "/log"
	if err := c.call(ctx, what, func(ctx context.Context) (err error) { log, err = t.Log(ctx, start, limit); return err }); err != nil {
		return nil, err
	}
	lines := make([]LogLine, 0, len(log))
	for _, n := range slices.Sorted(maps.Keys(log)) {
		lines = append(lines, LogLine{N: n + 1, T: log[n]})
	}
	return lines, nil
}

// taskTail returns the last n lines of a task log. go-proxmox drops the
// log's total, so the whole log is read: task logs are short.
func (c *Client) taskTail(ctx context.Context, upid UPID, n int) ([]string, error) {
	lines, err := c.TaskLog(ctx, upid, 0, 0)
	if err != nil {
		return nil, err
	}
	lines = lines[max(0, len(lines)-n):]
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.T
	}
	return out, nil
}

// WaitTask polls task upid every poll (0 means DefaultPollInterval) until
// it stops, and returns its final status. A task that stopped with an
// error yields a *TaskError holding the last lines of its log; a
// cancelled ctx returns the last status seen with the context's error. A
// few failed polls in a row are tolerated unless the API refused the
// request outright (HTTP 4xx, such as an unknown task).
func (c *Client) WaitTask(ctx context.Context, upid UPID, poll time.Duration) (*TaskStatus, error) {
	if _, err := c.task(upid); err != nil {
		return nil, fmt.Errorf("pve: WaitTask: %w", err)
	}
	if poll <= 0 {
		poll = DefaultPollInterval
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	var last *TaskStatus
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("pve: waiting for task %s: %w", upid, context.Cause(ctx))
		case <-timer.C:
		}
		st, err := c.TaskStatus(ctx, upid)
		if err != nil {
			failures++
			var apiErr *APIError
			refused := errors.As(err, &apiErr) && apiErr.StatusCode >= 400 && apiErr.StatusCode < 500
			if refused || failures > pollRetries || ctx.Err() != nil {
				return last, err
			}
			timer.Reset(poll)
			continue
		}
		failures = 0
		last = st
		if !st.Running() {
			if st.Succeeded() {
				return st, nil
			}
			tail, logErr := c.taskTail(ctx, upid, logTailLines)
			return st, &TaskError{UPID: upid, ExitStatus: st.ExitStatus, Log: tail, LogErr: logErr}
		}
		timer.Reset(poll)
	}
}
