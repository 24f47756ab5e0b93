// Command vmatool packs disk images into Proxmox VE backup archives (VMA),
// unpacks, verifies and inspects them, and deploys images to Proxmox nodes.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/vmatool/vmatool/internal/budget"
	"golang.org/x/term"
)

// Exit codes, in one place (see the EXIT STATUS section of each command's
// help, exitStatusHelp and the README's Commands section).
const (
	exitOK          = 0
	exitError       = 1 // bad input, failed verification, I/O errors
	exitUsage       = 2
	exitPartial     = 3   // --partial: the outputs are written, but data was missing
	exitInterrupted = 130 // SIGINT or SIGTERM; partial outputs removed
	exitBrokenPipe  = 141 // standard output closed early; silent, as cat (128+SIGPIPE)
)

// exitStatusHelp ends every command's EXIT STATUS section: what any
// command may also end with.
const exitStatusHelp = `  Every command also exits 130 when interrupted (SIGINT, SIGTERM), after
  removing its partial outputs, and 141 when standard output is closed
  before it has written everything (e.g. piped into head): it stops,
  removes its partial outputs and, as cat does, prints nothing.
`

// streams are the process's standard streams, replaceable in tests.
type streams struct {
	in       io.Reader
	out      io.Writer
	err      io.Writer
	errisTTY bool // draw progress on err
	outIsTTY bool // out is a terminal: no archive bytes, a summary for people
	now      func() time.Time
	getenv   func(string) string
	stdout   *stdoutWriter // out, when it is the process's standard output
	name     string        // the name vmatool was started as ("vma" through a link); "" is vmatool

	// The progress display (progress.go): err's terminal size (nil, or
	// 0, means unknown), --progress (lines on err even off a terminal),
	// and what paces the redraws (nil: a time.Ticker).
	errSize  func() (width, height int)
	progress bool
	ticker   func(time.Duration) (<-chan time.Time, func())
}

// programName is the name vmatool's messages in vma's form start with.
func (s *streams) programName() string {
	if s.name == "" {
		return "vmatool"
	}
	return s.name
}

// stdoutWriter is standard output. When its reader goes away (EPIPE, or
// Windows's equivalents: isBrokenPipe) it cancels the command, which then
// stops and removes its partial outputs, and vmatool exits with
// exitBrokenPipe without a word: the reader is gone, and the writer of the
// pipeline should end as quietly as cat does.
type stdoutWriter struct {
	f      *os.File
	cancel context.CancelFunc
	closed atomic.Bool
}

func (w *stdoutWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil && isBrokenPipe(err) {
		w.closed.Store(true)
		w.cancel()
	}
	return n, err
}

// stdoutClosed reports whether a write to standard output found no reader.
func (s *streams) stdoutClosed() bool { return s.stdout != nil && s.stdout.closed.Load() }

// childStdout is what a child process should get as its standard output:
// the file itself, so that it writes there directly.
func (s *streams) childStdout() io.Writer {
	if s.stdout != nil {
		return s.stdout.f
	}
	return s.out
}

// finish decides between the two ways out of an interrupted run: the
// command returning (its own message and cleanup), or the watchdog giving
// up on it. Whichever comes first holds it until the process exits.
var finish struct {
	sync.Mutex
	done bool // the command returned; the watchdog stands down
}

func main() {
	// On Windows, Go reports ^C as os.Interrupt and a closed console,
	// logoff or shutdown as SIGTERM, which leaves a few seconds to clean up.
	interrupted, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	catchSIGPIPE()
	ctx, cancel := context.WithCancel(interrupted)
	defer cancel()
	s := &streams{
		in: os.Stdin, err: os.Stderr,
		errisTTY: term.IsTerminal(int(os.Stderr.Fd())) && drawsEscapes(os.Stderr),
		outIsTTY: term.IsTerminal(int(os.Stdout.Fd())),
		errSize:  stderrSize,
		now:      time.Now, getenv: os.Getenv,
		stdout: &stdoutWriter{f: os.Stdout, cancel: cancel},
		name:   programName(os.Args[0]),
	}
	s.out = s.stdout
	limitMemory(s.getenv)
	if spec := s.getenv("VMATOOL_TEST_PAUSE"); spec != "" {
		testPause = newTestPause(ctx, spec, s.err)
	}
	go func() {
		// A command blocked in a read or write on a pipe, or in a long
		// sync, cannot see the cancellation; give it a moment to clean up
		// on its own, then undo its uncommitted outputs (waiting for a
		// step of a commit under way) and leave.
		<-interrupted.Done()
		time.Sleep(3 * time.Second)
		finish.Lock()
		if finish.done {
			finish.Unlock()
			return
		}
		abortOutputs()
		clearLine := ""
		if s.errisTTY {
			clearLine = "\r\033[K" // over a progress line
		}
		fmt.Fprintf(os.Stderr, "%svmatool: interrupted; removed partial outputs\n", clearLine)
		os.Exit(exitInterrupted)
	}()
	code := run(ctx, s, os.Args[1:])
	if s.stdoutClosed() {
		code = exitBrokenPipe
	}
	os.Exit(code)
}

func run(ctx context.Context, s *streams, args []string) int {
	root := newRoot(ctx, s)
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 && args[0] == "help" {
			if args[1] == "help" || args[1] == "-h" || args[1] == "--help" {
				help, _, _ := root.Find([]string{"help"})
				help.Help()
				return exitOK
			}
			return run(ctx, s, []string{args[1], "--help"})
		}
		printUsage(s.out, root)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] == "--version" {
		args = []string{"version"}
	}
	if isSubcommand(root, args[0]) {
		name, err := runCobra(root, args)
		finish.Lock()
		finish.done = true
		finish.Unlock()
		if err != nil && ctx.Err() != nil && !errors.Is(err, context.Canceled) {
			// A signal broke a pipe or a read; report it as the interrupt it was.
			err = fmt.Errorf("%w (%v)", context.Canceled, err)
		}
		return exitCode(s, name, err)
	}
	var names []string
	for _, c := range listed(root) {
		names = append(names, c.Name())
	}
	fmt.Fprintf(s.err, "vmatool: %s\nRun 'vmatool --help' for the list of commands.\n", unknownCommandError(args[0], names))
	return exitUsage
}

// printUsage is the overview: every command of root that listed gives,
// which completion offers and the man pages describe too.
func printUsage(w io.Writer, root *cobra.Command) {
	fmt.Fprint(w, "vmatool: Proxmox VE backup archives (VMA) without Proxmox\n\nUsage: vmatool COMMAND [OPTIONS] ARGS\n\nCommands:\n")
	cs := listed(root)
	width := 0
	for _, c := range cs {
		width = max(width, len(c.Name()))
	}
	for _, c := range cs {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.Name(), c.Short)
	}
	fmt.Fprint(w, "\nRun 'vmatool COMMAND --help' for a command's options and examples.\n")
	fmt.Fprint(w, "\nEXIT STATUS:\n"+overviewExitStatus+exitStatusHelp)
}

// overviewExitStatus is the overview's EXIT STATUS section (and the man
// page's), before what exitStatusHelp adds.
const overviewExitStatus = `  0 ok, 1 error (bad input, failed check, I/O error), 2 usage error,
  3 salvaged in part (unpack or convert --partial: outputs written, data missing).
`

// limitMemory keeps the heap close to what is live. vmatool's pipelines
// allocate their buffers once and reuse them, so collecting more often costs
// little, while the default (the heap may double) would take a pack to
// compressed output past its 64 MiB budget. GOGC and GOMEMLIMIT still win.
func limitMemory(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(25)
	}
	scaleMemoryLimit(getenv, 1)
}

// scaleMemoryLimit sets the soft memory limit for n pipelines running at
// once (deploy --parallel): a limit below what is live would make the
// collector run without pause.
func scaleMemoryLimit(getenv func(string) string, n int) {
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(n) * budget.Pack)
	}
}

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// errSilent means the command already reported the failure.
var errSilent = errors.New("failure already reported")

// errPartial means a salvage (--partial) wrote its outputs but data was
// missing from the archive; the command has said what.
var errPartial = errors.New("partial outputs written")

func exitCode(s *streams, name string, err error) int {
	var ue usageError
	switch {
	case s.stdoutClosed():
		return exitBrokenPipe
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(s.err, "vmatool %s: %s\nRun 'vmatool %s --help' for usage.\n", name, ue.msg, name)
		return exitUsage
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(s.err, "vmatool %s: interrupted\n", name)
		return exitInterrupted
	case errors.Is(err, errSilent):
		return exitError
	case errors.Is(err, errPartial):
		return exitPartial // the command has listed what is missing
	}
	fmt.Fprintf(s.err, "vmatool %s: %s\n", name, hideTempNames(oneLine(err.Error())))
	return exitError
}

// oneLine keeps an error on one line even if a wrapped message has newlines.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
