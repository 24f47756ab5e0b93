package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// sample is one timed run of one command.
type sample struct {
	Wall      time.Duration
	CPU       time.Duration // user + system, children included
	MaxRSSKiB int64
}

// tailBuffer keeps the last bytes written to it: enough to explain a
// failure without holding a runaway command's whole output.
type tailBuffer struct{ b []byte }

const tailMax = 4 << 10

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > tailMax {
		t.b = append(t.b[:0], t.b[len(t.b)-tailMax:]...)
	}
	return len(p), nil
}

// commandError is a command that exited non-zero, with what it said.
type commandError struct {
	script string
	err    error
	output string
}

func (e *commandError) Error() string {
	msg := e.err.Error()
	if e.output != "" {
		msg += ": " + lastLine(e.output)
	}
	return msg
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// runShell times "sh -c script". The clock includes starting sh, the same
// few hundred microseconds for both sides of a comparison; redirections
// in the script keep data off the harness's pipes, which would otherwise be
// part of the measurement.
func runShell(ctx context.Context, dir, script string) (sample, error) {
	var out tailBuffer
	cmd := exec.CommandContext(ctx, "sh", "-c", script)
	cmd.Dir = dir
	cmd.Stdout = &out
	cmd.Stderr = &out
	start := time.Now()
	err := cmd.Run()
	s := sample{Wall: time.Since(start)}
	if cmd.ProcessState != nil {
		s.CPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		s.MaxRSSKiB = maxRSSKiB(cmd.ProcessState)
	}
	if err != nil {
		return s, &commandError{script: script, err: err, output: string(bytes.TrimSpace(out.b))}
	}
	return s, nil
}

// shellQuote quotes s for sh unless it is plainly safe, so printed
// commands can be pasted back into a shell.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=+:,@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func describeSample(s sample) string {
	return fmt.Sprintf("%s (cpu %s, rss %s)", fmtDuration(s.Wall), fmtDuration(s.CPU), formatBytes(s.MaxRSSKiB*kiB))
}
