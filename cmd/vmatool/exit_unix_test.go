//go:build unix

package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startWithStdout starts vmatool with stdout as its standard output; the
// caller waits.
func startWithStdout(t *testing.T, stdout *os.File, stdin io.Reader, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(vmatoolBin, args...)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	cmd.Stdin, cmd.Stdout = stdin, stdout
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &stderr
}

// exitStatus is the status the process exited with; being killed by a
// signal is a failure of the test, not a status.
func exitStatus(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	cmd.Wait()
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		t.Fatalf("killed by %v instead of exiting", ws.Signal())
	}
	return ws.ExitStatus()
}

// A closed standard output ends every command with 141, in silence, and
// with nothing partial left behind.
func TestClosedStdout(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, dir, "a.raw", 4<<20)
	archive := filepath.Join(dir, "a.vma")
	runInProcess(t, nil, nil, "pack", "-q", "-o", archive, img).mustSucceed(t)
	for _, args := range [][]string{
		{"pack", "-q", "-o", "-", img},
		{"list", archive},
		{"list", "--json", archive},
		{"verify", "--json", archive},
		{"config", archive},
		{"info", archive},
		{"extract", "-v", archive, filepath.Join(dir, "x")},
		{"verify", "--help"},
		{"--help"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			r.Close() // no reader, before the first write
			cmd, stderr := startWithStdout(t, w, nil, args...)
			w.Close()
			if code := exitStatus(t, cmd); code != 141 || stderr.Len() != 0 {
				t.Errorf("exit %d, stderr %q; want 141 and nothing", code, stderr)
			}
			assertGone(t, filepath.Join(dir, "x"))
		})
	}
}

// A reader that goes away mid-stream (vmatool pack -o - | head -c1) ends
// the writer the same way.
func TestStdoutReaderLeaves(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, dir, "a.raw", 16<<20)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd, stderr := startWithStdout(t, w, nil, "pack", "-q", "--compress", "none", "-o", "-", img)
	w.Close()
	if _, err := io.ReadFull(r, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if code := exitStatus(t, cmd); code != 141 || stderr.Len() != 0 {
		t.Errorf("exit %d, stderr %q; want 141 and nothing", code, stderr)
	}
}

// A command that does not stop within the watchdog's grace period (here:
// blocked writing DEVINFO lines to a standard output nobody reads) is ended
// by the watchdog: exit 130, one line, partial outputs removed.
func TestWatchdogExit(t *testing.T) {
	var devs []vmaDev
	for i := range 254 {
		devs = append(devs, vmaDev{fmt.Sprintf("drive-virtio%d", i), 4096})
	}
	archive := writeFile(t, filepath.Join(t.TempDir(), "many.vma"), vmaSpec{configs: []string{"qemu-server.conf"}, devices: devs}.bytes())
	// DEVINFO lines long enough that 254 of them overflow a 64 KiB pipe.
	target := filepath.Join(t.TempDir(), strings.Repeat("d", 250), "out")
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd, stderr := startWithStdout(t, w, nil, "extract", "-v", archive, target)
	w.Close()
	// Wait until the outputs stop growing: extract is blocked on its stdout.
	last, deadline := -1, time.Now().Add(10*time.Second)
	for {
		time.Sleep(200 * time.Millisecond)
		// Outputs are staged in a folder beside the target until the set
		// is complete.
		names, _ := filepath.Glob(filepath.Join(filepath.Dir(target), tempPrefix+"*", "*"))
		if len(names) > 0 && len(names) == last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("extract never blocked (%d outputs)", len(names))
		}
		last = len(names)
	}
	start := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	code := exitStatus(t, cmd)
	if code != 130 || stderr.String() != "vmatool: interrupted; removed partial outputs\n" {
		t.Errorf("exit %d, stderr %q; want 130 and the watchdog's line", code, stderr)
	}
	if d := time.Since(start); d < 2*time.Second || d > 10*time.Second {
		t.Errorf("took %v; the watchdog waits 3 s", d)
	}
	assertGone(t, target) // extract made it, so it goes
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(target), tempPrefix+"*")); len(left) > 0 {
		t.Errorf("staging left behind: %v", left)
	}
}

// Every exit status is documented: each command's help and the overview
// list 130 and 141.
func TestExitStatusesDocumented(t *testing.T) {
	helps := [][]string{{"--help"}}
	for _, c := range commands {
		helps = append(helps, []string{c.name, "--help"})
	}
	for _, args := range helps {
		out := runInProcess(t, nil, nil, args...).mustSucceed(t).stdout
		i := strings.Index(out, "EXIT STATUS:")
		if i < 0 || !strings.Contains(out[i:], "130") || !strings.Contains(out[i:], "141") {
			t.Errorf("vmatool %s: EXIT STATUS lacks 130 or 141:\n%s", strings.Join(args, " "), out)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, []byte("141")) {
		t.Error("README does not document exit status 141")
	}
}
