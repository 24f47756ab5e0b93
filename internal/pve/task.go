package pve

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"
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
	UPID       string `json:"upid"`
	Node       string `json:"node"`
	Type       string `json:"type"`
	ID         string `json:"id"`
	User       string `json:"user"`
	Status     string `json:"status"`     // "running" or "stopped"
	ExitStatus string `json:"exitstatus"` // set once stopped: "OK", "WARNINGS: n" or an error message
	StartTime  Int    `json:"starttime"`
	PID        Int    `json:"pid"`
}

// warningsRE is the exit status of a task that succeeded with warnings.
var warningsRE = regexp.MustCompile(`^WARNINGS: \d+$`)

// Running reports whether the task has not stopped yet.
func (s *TaskStatus) Running() bool { return s.Status != "stopped" }

// Succeeded reports whether the task stopped with "OK" or "WARNINGS: n",
// the two exit statuses Proxmox itself counts as success.
func (s *TaskStatus) Succeeded() bool {
	return !s.Running() && (s.ExitStatus == "OK" || warningsRE.MatchString(s.ExitStatus))
}

// TaskStatus returns the state of task upid. node may be empty: the UPID
// names its node.
func (c *Client) TaskStatus(ctx context.Context, node string, upid UPID) (*TaskStatus, error) {
	var st TaskStatus
	if _, err := c.do(ctx, http.MethodGet, taskPath(node, upid, "status"), nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// LogLine is one line of a task log; N counts from 1.
type LogLine struct {
	N int    `json:"n"`
	T string `json:"t"`
}

// TaskLog returns up to limit lines of the log of task upid starting at
// line start (0-based), and the log's total line count (-1 if the server
// did not say).
func (c *Client) TaskLog(ctx context.Context, node string, upid UPID, start, limit int) ([]LogLine, int, error) {
	q := url.Values{"start": {strconv.Itoa(start)}, "limit": {strconv.Itoa(limit)}}
	var lines []LogLine
	total, err := c.do(ctx, http.MethodGet, taskPath(node, upid, "log"), q, &lines)
	if err != nil {
		return nil, -1, err
	}
	return lines, total, nil
}

// taskTail returns the last n lines of a task log.
func (c *Client) taskTail(ctx context.Context, node string, upid UPID, n int) ([]string, error) {
	lines, total, err := c.TaskLog(ctx, node, upid, 0, n)
	if err != nil {
		return nil, err
	}
	if total > len(lines) {
		if lines, _, err = c.TaskLog(ctx, node, upid, max(0, total-n), n); err != nil {
			return nil, err
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.T
	}
	return out, nil
}

// WaitTask polls task upid every pollInterval (0 means
// DefaultPollInterval) until it stops, and returns its final status. A
// task that stopped with an error yields a *TaskError holding the last
// lines of its log; a cancelled ctx returns the last status seen with the
// context's error. A few failed polls in a row are tolerated unless the
// API refused the request outright (HTTP 4xx). node may be empty: the
// UPID names its node.
func (c *Client) WaitTask(ctx context.Context, node string, upid UPID, pollInterval time.Duration) (*TaskStatus, error) {
	if upid.IsZero() {
		return nil, fmt.Errorf("pve: WaitTask: %w: empty", ErrBadUPID)
	}
	if pollInterval <= 0 {
		pollInterval = DefaultPollInterval
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
		st, err := c.TaskStatus(ctx, node, upid)
		if err != nil {
			failures++
			var apiErr *APIError
			refused := errors.As(err, &apiErr) && apiErr.StatusCode >= 400 && apiErr.StatusCode < 500
			if refused || failures > pollRetries || ctx.Err() != nil {
				return last, err
			}
			timer.Reset(pollInterval)
			continue
		}
		failures = 0
		last = st
		if !st.Running() {
			if st.Succeeded() {
				return st, nil
			}
			tail, logErr := c.taskTail(ctx, node, upid, logTailLines)
			return st, &TaskError{UPID: upid, ExitStatus: st.ExitStatus, Log: tail, LogErr: logErr}
		}
		timer.Reset(pollInterval)
	}
}

func taskPath(node string, upid UPID, leaf string) string {
	if node == "" {
		node = upid.Node
	}
	return apiPath("nodes", node, "tasks", upid.String(), leaf)
}
