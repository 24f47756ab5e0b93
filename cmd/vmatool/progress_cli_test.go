package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// summaryRE matches a summary line that starts with prefix: the time and
// the rate come after it.
func summaryRE(prefix string) *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `, \d+\.\ds, \d+(\.\d)? (B|[KMGT]iB)/s\n$`)
}

// TestProgressSummaries runs the binary with standard error a pipe: with
// --progress each command ends with its summary line, whose numbers are
// the run's own (the input's size, what was written), and without it
// standard error stays empty.
func TestProgressSummaries(t *testing.T) {
	dir := t.TempDir()
	const size = 64 << 20
	img := sparseMixedImage(t, filepath.Join(dir, "disk.raw"), size, 4<<20, 7)
	// A vzdump name, so that pack has no warning about the name to give.
	archive := filepath.Join(dir, "vzdump-qemu-100-2026_01_01-00_00_00.vma.zst")
	ratio := func(in, out int64) string { return fmt.Sprintf("%.2f%%", float64(out)*100/float64(in)) }

	r := runInProcess(t, nil, nil, "pack", "--progress", "-o", archive, img).mustSucceed(t)
	out := fileSize(archive)
	want := fmt.Sprintf("pack: %s (64.0 MiB => %s, %s)", ratio(size, out), humanBytes(out), archive)
	if !summaryRE(want).MatchString(r.stderr) {
		t.Errorf("pack: stderr %q, want %q and the time and rate", r.stderr, want)
	}
	os.Remove(archive)
	if r := runInProcess(t, nil, nil, "pack", "-o", archive, img).mustSucceed(t); r.stderr != "" {
		t.Errorf("pack without --progress: stderr %q", r.stderr)
	}

	r = runInProcess(t, nil, nil, "pack", "--progress", "-o", "-", "--compress", "zstd", img).mustSucceed(t)
	want = fmt.Sprintf("pack: %s (64.0 MiB => %s, standard output)", ratio(size, int64(len(r.stdout))), humanBytes(int64(len(r.stdout))))
	if !summaryRE(want).MatchString(r.stderr) {
		t.Errorf("pack -o -: stderr %q, want %q and the time and rate", r.stderr, want)
	}

	qcow := filepath.Join(dir, "disk.qcow2")
	r = runInProcess(t, nil, nil, "convert", "--progress", img, qcow).mustSucceed(t)
	out = fileSize(qcow)
	want = fmt.Sprintf("convert: %s (64.0 MiB => %s, %s)", ratio(size, out), humanBytes(out), qcow)
	if !summaryRE(want).MatchString(r.stderr) {
		t.Errorf("convert: stderr %q, want %q and the time and rate", r.stderr, want)
	}

	in := fileSize(archive)
	unpacked := filepath.Join(dir, "out")
	r = runInProcess(t, nil, nil, "unpack", "--progress", archive, unpacked).mustSucceed(t)
	want = fmt.Sprintf("unpack: %s (%s => 64.0 MiB, %s)", ratio(in, size), humanBytes(in), unpacked)
	if !summaryRE(want).MatchString(r.stderr) {
		t.Errorf("unpack: stderr %q, want %q and the time and rate", r.stderr, want)
	}

	r = runInProcess(t, nil, nil, "verify", "--progress", archive).mustSucceed(t)
	want = fmt.Sprintf("verify: %s (%s)", humanBytes(in), archive)
	if !summaryRE(want).MatchString(r.stderr) {
		t.Errorf("verify: stderr %q, want %q and the time and rate", r.stderr, want)
	}
}

// TestPackInNarrowTmux runs pack in a 40-column tmux pane, writing to a
// pipe that is not read for a few seconds, so that the progress line is
// redrawn many times while the pack waits; the screen shows that one
// line, no wider than the pane, and at the end the summary in its place.
func TestPackInNarrowTmux(t *testing.T) {
	tmux := requireTool(t, "tmux")
	dir := t.TempDir()
	img := sparseMixedImage(t, filepath.Join(dir, "big.raw"), 8<<30, 8<<20, 9)
	sock := filepath.Join(dir, "tmux.sock")
	ctl := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(tmux, append([]string{"-S", sock, "-f", "/dev/null"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	script := fmt.Sprintf("%s pack -o - %s | (sleep 3; cat >/dev/null); echo EXIT=$?; sleep 60", vmatoolBin, img)
	ctl("new-session", "-d", "-s", "t", "-x", "40", "-y", "12", "sh", "-c", script)
	t.Cleanup(func() { exec.Command(tmux, "-S", sock, "kill-server").Run() })
	if got := strings.TrimSpace(ctl("display-message", "-p", "-t", "t", "#{pane_width}")); got != "40" {
		t.Fatalf("pane width %s", got)
	}
	// screen returns the pane's lines that are not blank.
	screen := func(args ...string) []string {
		var lines []string
		for _, l := range strings.Split(ctl(append([]string{"capture-pane", "-p", "-t", "t"}, args...)...), "\n") {
			if strings.TrimSpace(l) != "" {
				lines = append(lines, l)
			}
		}
		return lines
	}
	waitFor := func(what string, ok func([]string) bool) []string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			s := screen()
			if ok(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s on the screen:\n%s", what, strings.Join(s, "\n"))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	progress := regexp.MustCompile(`^pack \S+ \S*iB .*\d+%`)
	waitFor("progress line", func(s []string) bool { return len(s) > 0 && progress.MatchString(s[0]) })
	// Ten redraws a second while the pipe is full: still one line.
	for range 5 {
		time.Sleep(200 * time.Millisecond)
		s := screen()
		if len(s) == 1 && strings.HasPrefix(s[0], "vmatool") {
			break // done already on a fast machine
		}
		if len(s) != 1 || !progress.MatchString(s[0]) || utf8.RuneCountInString(strings.TrimRight(s[0], " ")) > 39 {
			t.Fatalf("screen while packing:\n%s", strings.Join(s, "\n"))
		}
	}
	s := waitFor("exit", func(s []string) bool { return len(s) > 0 && strings.HasPrefix(s[len(s)-1], "EXIT=") })
	if s[len(s)-1] != "EXIT=0" {
		t.Fatalf("screen at the end:\n%s", strings.Join(s, "\n"))
	}
	// The summary replaced the progress line; printed once, it may wrap
	// (-J joins wrapped lines).
	s = screen("-J")
	summary := regexp.MustCompile(`^pack: \d+\.\d\d% \(8\.0 GiB => \d+(\.\d)? (B|[KMG]iB), standard output\), \d+\.\ds, \d+(\.\d)? (B|[KMGT]iB)/s$`)
	if len(s) != 2 || !summary.MatchString(strings.TrimRight(s[0], " ")) {
		t.Errorf("screen at the end:\n%s", strings.Join(s, "\n"))
	}
}

// TestDeployProgressLines deploys to three targets at once through the
// binary with --progress and standard error a pipe: each step is a line,
// and each target ends with its summary; without --progress (and not
// quiet) nothing is printed there.
func TestDeployProgressLines(t *testing.T) {
	n := newNode(t)
	img := testImage(t, t.TempDir(), "nixos.raw", 1<<20)
	targets := writeFile(t, filepath.Join(t.TempDir(), "targets.json"), []byte(fmt.Sprintf(`[
  {"name": "web1", "host": %[1]q, "vmid": 221},
  {"name": "web2", "host": %[1]q, "vmid": 222, "via": "ssh-stream"},
  {"name": "web3", "host": %[1]q, "vmid": 223}
]`, n.Host())))
	args := []string{"deploy", "--targets", targets, "--parallel", "3", "--known-hosts", n.SSH.KnownHostsFile,
		"--identity", n.SSH.ClientKeyFile, "--dump-dir", n.Dump, img}
	r := runInProcess(t, nil, deployEnvVars, append([]string{args[0], "--progress"}, args[1:]...)...).mustSucceed(t)
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if len(lines) < 3 {
		t.Fatalf("stderr %q", r.stderr)
	}
	summaries := lines[len(lines)-3:]
	slices.Sort(summaries)
	for i, name := range []string{"web1", "web2", "web3"} {
		re := regexp.MustCompile(`^` + name + `: done, \d+\.\d\d% \(1\.0 MiB => \d+(\.\d)? (B|KiB) sent\), \d+\.\ds(, \d+(\.\d)? (B|[KMGT]iB)/s)?$`)
		if !re.MatchString(summaries[i]) {
			t.Errorf("summary %q", summaries[i])
		}
		if !slices.Contains(lines, name+": SSH to "+n.Host()) || !slices.ContainsFunc(lines, func(l string) bool {
			return strings.HasPrefix(l, name+": qmrestore ") || strings.HasPrefix(l, name+": zstd -dc | qmrestore - ")
		}) {
			t.Errorf("%s's steps are missing:\n%s", name, r.stderr)
		}
	}
	args[len(args)-1] = "--force"
	args = append(args, img)
	if r := runInProcess(t, nil, deployEnvVars, args...).mustSucceed(t); r.stderr != "" {
		t.Errorf("without --progress: stderr %q", r.stderr)
	}
}
