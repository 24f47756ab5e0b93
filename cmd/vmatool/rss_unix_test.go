//go:build unix

package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
)

// A child's peak RSS from rusage includes its parent's: Go starts children
// with vfork (CLONE_VM), and Linux takes the high-water mark of the memory
// a process leaves at exec, here the parent's, as its own. A test process
// that has grown to 140 MiB would see every vmatool run at 140 MiB. So
// vmatool runs under a second copy of the test binary, a few MiB when it
// starts vmatool, which reports the rusage of that grandchild on fd 3.
const rssHelperEnv = "VMATOOL_TEST_RSS_HELPER"

// runRSSHelper is that second copy: when the environment says so, it runs
// its arguments, reports their peak RSS, exits with their status, and
// never returns.
func runRSSHelper() {
	if os.Getenv(rssHelperEnv) == "" {
		return
	}
	os.Unsetenv(rssHelperEnv)
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// Signals a test sends to the helper are meant for vmatool.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	err := cmd.Start()
	if err == nil {
		go func() {
			for s := range sigs {
				cmd.Process.Signal(s)
			}
		}()
		err = cmd.Wait()
	}
	code := 127
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
		out := os.NewFile(3, "rss")
		fmt.Fprint(out, peakRSS(cmd.ProcessState))
		out.Close()
	} else {
		fmt.Fprintln(os.Stderr, "rss helper:", err)
	}
	os.Exit(code)
}

// measure makes cmd run through the helper. After cmd has run, peak
// returns the peak RSS of cmd's own program in bytes.
func measure(cmd *exec.Cmd) (peak func() int64) {
	self, err := os.Executable()
	r, w, perr := os.Pipe()
	if err != nil || perr != nil {
		return func() int64 { return peakRSS(cmd.ProcessState) }
	}
	cmd.Args = append([]string{self, cmd.Path}, cmd.Args[1:]...)
	cmd.Path = self
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, rssHelperEnv+"=1")
	cmd.ExtraFiles = []*os.File{w}
	return func() int64 {
		w.Close()
		b, _ := io.ReadAll(r)
		r.Close()
		n, _ := strconv.ParseInt(string(b), 10, 64)
		return n
	}
}

// peakRSS reads a finished child's peak resident set size from rusage.
// Linux reports ru_maxrss in KiB, macOS in bytes.
func peakRSS(ps *os.ProcessState) int64 {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok || ru == nil {
		return 0
	}
	if runtime.GOOS == "darwin" {
		return int64(ru.Maxrss)
	}
	return int64(ru.Maxrss) << 10
}
