package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// stderrTail is how much of a command's standard error ExitError keeps.
const stderrTail = 4 << 10

// killTimeout bounds the session that stops an abandoned remote command.
const killTimeout = 5 * time.Second

// pidMarker starts the line with which the remote wrapper announces its
// process ID on standard error. Run strips that line.
const pidMarker = "vmatool-pid "

// wrapper runs the command after announcing its PID. sshd makes each
// session's shell a process group leader, and exec keeps the PID, so Run
// can later stop the command and its children with one kill.
const wrapper = `printf '` + pidMarker + `%s\n' "$$" >&2; exec "$@"`

// Run runs cmd on the remote host, each argument quoted with ShellQuote,
// and waits for it to exit. stdin (may be nil) is streamed to the command
// and closed at its EOF; stdout and stderr (may be nil) receive its output.
//
// A command that exits non-zero yields an *ExitError holding the tail of
// its standard error.
//
// If ctx is cancelled or reading stdin fails, the remote command is sent
// SIGTERM (to its process group, over a fresh session) before its input is
// closed, so it never mistakes a broken stream for a complete one; then Run
// returns the context's or the read error. A kill is needed because
// OpenSSH refuses SSH signal requests in root sessions.
//
// Run returns once the command has exited or been abandoned; it does not
// wait for a stdin the command never read to drain. If stdin is a pipe
// whose writer may block, close the reader after Run returns.
func (c *Client) Run(ctx context.Context, cmd []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(cmd) == 0 {
		return errors.New("remote: Run: empty command")
	}
	return c.run(ctx, cmd[0], cmd, stdin, stdout, stderr)
}

// run is Run with the name errors use for the command.
func (c *Client) run(ctx context.Context, name string, cmd []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("remote: %s: %w", name, err)
	}
	sess, err := c.ssh.NewSession()
	if err != nil {
		return connErr(name+": opening session", err)
	}
	defer sess.Close()

	tail := &tailBuffer{max: stderrTail}
	var errOut io.Writer = tail
	if stderr != nil {
		errOut = io.MultiWriter(tail, stderr)
	}
	pid := &pidSniffer{w: errOut, known: make(chan struct{})}
	sess.Stdout = stdout
	sess.Stderr = pid
	var stdinPipe io.WriteCloser
	if stdin != nil {
		// A pipe of our own, not sess.Stdin: x/crypto's Wait would also wait
		// for stdin to be drained, which may be never.
		if stdinPipe, err = sess.StdinPipe(); err != nil {
			return fmt.Errorf("remote: %s: %w", name, err)
		}
	}
	line := ShellQuote(append([]string{"sh", "-c", wrapper, "sh"}, cmd...)...)
	if err := sess.Start(line); err != nil {
		return connErr(name+": starting", err)
	}

	readFailed := make(chan error, 1)
	if stdinPipe != nil {
		go func() {
			w := &recordingWriter{w: stdinPipe}
			_, err := io.Copy(w, stdin)
			if err != nil && !w.failed {
				// Leave stdin open: EOF now would tell the command that the
				// input ended well. Run kills it instead.
				readFailed <- fmt.Errorf("remote: %s: reading input: %w", name, err)
				return
			}
			stdinPipe.Close()
		}()
	}
	waitDone := make(chan error, 1)
	go func() { waitDone <- sess.Wait() }()

	var abortErr error
	select {
	case waitErr := <-waitDone:
		select {
		case err := <-readFailed:
			// The command finished, but on input that was cut short.
			return err
		default:
		}
		return c.exitError(name, waitErr, tail)
	case <-ctx.Done():
		abortErr = fmt.Errorf("remote: %s: %w", name, context.Cause(ctx))
	case abortErr = <-readFailed:
	}
	// The command must be killed before the session closes: closing it
	// ends the command's stdin, which it would take for the end of good
	// input. Its pid arrives first thing on stderr; wait for it if the
	// abort came sooner.
	select {
	case <-pid.known:
	case <-waitDone:
	case <-time.After(killTimeout):
	}
	if p := pid.get(); p > 0 {
		c.kill(p)
	}
	return abortErr
}

// exitError turns the outcome of Wait into Run's error.
func (c *Client) exitError(name string, waitErr error, tail *tailBuffer) error {
	var exitErr *ssh.ExitError
	switch {
	case waitErr == nil:
		return nil
	case errors.As(waitErr, &exitErr):
		e := &ExitError{Command: name, Status: exitErr.ExitStatus(), Stderr: tail.String()}
		if sig := exitErr.Signal(); sig != "" {
			e.Status, e.Signal = -1, sig
		}
		return e
	}
	return connErr(name, waitErr)
}

// kill sends SIGTERM to the process group led by pid, or to pid alone if
// it leads none, over a new session. It is best effort: if the connection
// is gone, sshd has already cut the command's input and output.
func (c *Client) kill(pid int) {
	sess, err := c.ssh.NewSession()
	if err != nil {
		return
	}
	defer sess.Close()
	p := strconv.Itoa(pid)
	done := make(chan struct{})
	go func() {
		sess.Run("kill -TERM -- -" + p + " 2>/dev/null || kill -TERM " + p)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(killTimeout):
	}
}

// connErr maps the ways x/crypto reports a vanished peer to
// ErrConnectionLost; what says what was being done.
func connErr(what string, err error) error {
	var missing *ssh.ExitMissingError
	if errors.As(err, &missing) || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %s (%v)", ErrConnectionLost, what, err)
	}
	return fmt.Errorf("remote: %s: %w", what, err)
}

// recordingWriter notes whether a write failed, so a copy error can be
// blamed on the right side: a failed write means the session ended, a
// failed read means the caller's input broke.
type recordingWriter struct {
	w      io.Writer
	failed bool
}

func (r *recordingWriter) Write(p []byte) (int, error) {
	n, err := r.w.Write(p)
	if err != nil {
		r.failed = true
	}
	return n, err
}

// pidSniffer takes the wrapper's PID line off the front of standard error
// and passes everything else on.
type pidSniffer struct {
	w     io.Writer
	mu    sync.Mutex
	pid   int
	head  []byte        // the first line, while incomplete
	seen  bool          // the first line has been handled
	known chan struct{} // closed once the first line has been handled
}

func (s *pidSniffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	if s.seen {
		s.mu.Unlock()
		return s.w.Write(p)
	}
	n := len(p)
	s.head = append(s.head, p...)
	i := bytes.IndexByte(s.head, '\n')
	if i < 0 && len(s.head) < 64 {
		s.mu.Unlock()
		return n, nil
	}
	s.seen = true
	close(s.known)
	rest := s.head
	if i >= 0 {
		if v, ok := bytes.CutPrefix(s.head[:i], []byte(pidMarker)); ok {
			if pid, err := strconv.Atoi(string(v)); err == nil {
				s.pid = pid
				rest = s.head[i+1:]
			}
		}
	}
	s.head = nil
	s.mu.Unlock()
	if len(rest) > 0 {
		if _, err := s.w.Write(rest); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func (s *pidSniffer) get() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
