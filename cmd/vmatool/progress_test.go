package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vmatool/vmatool/internal/deploy"
)

// fakeStreams runs commands in process, with stderr a terminal or not.
func fakeStreams(tty bool) (*streams, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return &streams{in: strings.NewReader(""), out: &out, err: &errb, errisTTY: tty, now: time.Now,
		getenv: func(string) string { return "" }}, &out, &errb
}

func TestProgressOnlyOnATerminal(t *testing.T) {
	archive := filepath.Join(vectorDir, "v02-two-disks.vma")
	summary := `verify: 661\.0 KiB \(` + regexp.QuoteMeta(archive) + `\), \d+\.\ds, \d+(\.\d)? (B|[KMGT]iB)/s\n$`
	for _, tc := range []struct {
		tty   bool
		args  []string
		wants string // "": nothing; "live": the live line, then the summary over it; "summary": the summary only
	}{
		{true, []string{"verify", archive}, "live"},
		{true, []string{"verify", "--quiet", archive}, ""},
		{false, []string{"verify", archive}, ""},
		{false, []string{"verify", "--progress", archive}, "summary"},
		// --json turns progress off, unless --progress asks for it.
		{false, []string{"verify", "--json", archive}, ""},
		{false, []string{"verify", "--json", "--progress", archive}, "summary"},
		{true, []string{"unpack", archive, "DIR"}, "live"},
		{false, []string{"unpack", archive, "DIR"}, ""},
	} {
		s, _, errb := fakeStreams(tc.tty)
		// No ticks: on a terminal the line is drawn once, when the meter
		// starts, then the summary replaces it.
		s.ticker = func(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }
		for i, a := range tc.args {
			if a == "DIR" {
				tc.args[i] = filepath.Join(t.TempDir(), "out")
			}
		}
		if code := run(context.Background(), s, tc.args); code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errb)
		}
		got := errb.String()
		var ok bool
		switch tc.wants {
		case "":
			ok = got == ""
		case "summary":
			ok = regexp.MustCompile("^" + summary).MatchString(got)
		case "live":
			live := `^\r\033\[K` + tc.args[0] + ` [^\r\n]*/s[^\r\n]*\r\033\[J`
			if tc.args[0] == "verify" {
				ok = regexp.MustCompile(live + summary).MatchString(got)
			} else {
				ok = regexp.MustCompile(live+`unpack: \d+\.\d\d% \(661\.0 KiB => [^,]+, `).MatchString(got) &&
					strings.Count(got, "\n") == 1
			}
		}
		if !ok {
			t.Errorf("tty=%v %v: stderr %q", tc.tty, tc.args, got)
		}
	}
}

// TestProgressConflicts: --progress with a flag that turns progress off
// is a usage error, not a silent choice.
func TestProgressConflicts(t *testing.T) {
	archive := filepath.Join(vectorDir, "v02-two-disks.vma")
	for _, args := range [][]string{
		{"verify", "--quiet", "--progress", archive},
		{"verify", "-v", "--progress", archive},
		{"unpack", "-q", "--progress", archive, "DIR"},
		{"pack", "--progress", "-q", "-o", "OUT", "disk.raw"},
		{"convert", "--progress", "--quiet", "a.raw", "b.qcow2"},
		{"deploy", "--progress", "--quiet", "--host", "pve", "--vmid", "100", "disk.raw"},
	} {
		s, out, errb := fakeStreams(false)
		if code := run(context.Background(), s, args); code != exitUsage {
			t.Errorf("%v: exit %d, want %d; stderr %q", args, code, exitUsage, errb)
		}
		want := "--progress and --quiet contradict each other: choose one"
		if args[1] == "-v" {
			want = "--progress and --verbose contradict each other: choose one"
		}
		if !strings.Contains(errb.String(), want) || out.Len() != 0 {
			t.Errorf("%v: stdout %q, stderr %q", args, out, errb)
		}
	}
}

func TestSummaryLine(t *testing.T) {
	for _, tc := range []struct {
		label   string
		in, out int64
		name    string
		elapsed time.Duration
		want    string
	}{
		{"pack", 1 << 30, 400 << 20, "a.vma.zst", 2500 * time.Millisecond,
			"pack: 39.06% (1.0 GiB => 400.0 MiB, a.vma.zst), 2.5s, 409.6 MiB/s"},
		{"verify", 3 << 20, -1, "x.vma", 0, "verify: 3.0 MiB (x.vma), 0.0s"},
		{"convert", 2 << 30, 2 << 30, "-", 90 * time.Second,
			"convert: 100.00% (2.0 GiB => 2.0 GiB, standard output), 1m30s, 22.8 MiB/s"},
		{"unpack", 0, 0, "", time.Second, "unpack: (0 B => 0 B), 1.0s, 0 B/s"},
	} {
		if got := summaryLine(tc.label, tc.in, tc.out, tc.name, tc.elapsed); got != tc.want {
			t.Errorf("summaryLine(%q, %d, %d, %q, %v) =\n%q, want\n%q", tc.label, tc.in, tc.out, tc.name, tc.elapsed, got, tc.want)
		}
	}
}

// TestFit narrows one status line step by step: the fields go in
// priority order, then the label is shortened.
func TestFit(t *testing.T) {
	fields := byteFields(1<<30, 4<<30, 2*time.Second)
	for _, tc := range []struct {
		width int
		label string
		want  string
	}{
		{80, "pack", "pack 1.0 GiB / 4.0 GiB 25% 512.0 MiB/s ETA 6s"},
		{46, "pack", "pack 1.0 GiB / 4.0 GiB 25% 512.0 MiB/s ETA 6s"},
		{45, "pack", "pack 1.0 GiB 25% 512.0 MiB/s ETA 6s"},
		{40, "pack", "pack 1.0 GiB 25% 512.0 MiB/s ETA 6s"},
		{30, "pack", "pack 25% 512.0 MiB/s ETA 6s"},
		{25, "pack", "pack 25% 512.0 MiB/s"},
		{15, "pack", "pack 25%"},
		// A target's name tells rows apart: fields go before it is cut.
		{40, "build-server-eu-west-1.example.com", "build-server-eu-west-1.example.com 25%"},
		{20, "build-server-eu-west-1.example.com", "build-server-e… 25%"},
		{10, "build-server-eu-west-1.example.com", "build-se…"},
		{5, "pack", "pack"},
		{3, "pack", "p…"},
	} {
		if got := fit(tc.label, fields, tc.width); got != tc.want {
			t.Errorf("fit(%q, width %d) = %q, want %q", tc.label, tc.width, got, tc.want)
		}
	}
	// No width makes a line longer than width-1.
	rows := []*targetRow{
		{name: "web1", step: deploy.StepTransfer, read: 1 << 30, total: 4 << 30, sent: 300 << 20, restore: -1},
		{name: "ноутбук-сервер-в-подвале", step: deploy.StepRestore, read: 3 << 30, total: 4 << 30, sent: 1 << 30, restore: 37},
		{name: strings.Repeat("x", 200), step: deploy.StepRestore, sent: 1 << 30, restore: 99},
	}
	now := time.Date(2024, 1, 1, 0, 0, 5, 0, time.UTC)
	for _, r := range rows {
		r.sending = now.Add(-3 * time.Second)
		label, fs := r.status(now)
		for width := 2; width <= 200; width++ {
			if got := fit(label, fs, width); utf8.RuneCountInString(got) > width-1 {
				t.Fatalf("width %d: %q is %d characters", width, got, utf8.RuneCountInString(got))
			}
		}
	}
}

// TestLiveRedrawsInPlace runs a meter on a 40-column terminal: every
// redraw starts with \r and writes no newline, no line is longer than
// the terminal is wide, and the screen shows one line at the end.
func TestLiveRedrawsInPlace(t *testing.T) {
	for _, done := range []bool{false, true} {
		rig := newDisplayRig(true, 40, 24, false)
		m := newMeter(rig.s, false, "pack", 4<<30)
		if !slices.Equal(rig.every, []time.Duration{liveEvery}) {
			t.Fatalf("ticker intervals %v", rig.every)
		}
		if got, want := rig.err.next(), "\r\033[Kpack 0 B / 4.0 GiB 0% 0 B/s"; got != want {
			t.Errorf("the meter started with %q, want %q", got, want)
		}
		var frames []string
		for range 8 {
			m.Update(512 << 20)
			rig.tick(t, time.Second)
			frames = append(frames, rig.err.next())
		}
		if done {
			m.Done(1<<30, "disk.vma.zst")
		} else {
			m.Finish()
		}
		end := rig.err.next()
		for i, f := range frames {
			line, ok := strings.CutPrefix(f, "\r\033[K")
			if !ok || strings.ContainsAny(line, "\r\n\033") || utf8.RuneCountInString(line) > 39 {
				t.Errorf("frame %d: %q", i, f)
			}
		}
		if want := "\r\033[Kpack 512.0 MiB 12% 512.0 MiB/s ETA 7s"; frames[0] != want {
			t.Errorf("first frame %q, want %q", frames[0], want)
		}
		v := newVT(t, 40, 24)
		v.Write([]byte(strings.Join(frames, "")))
		if got := v.lines(); !slices.Equal(got, []string{"pack 4.0 GiB / 4.0 GiB 100% 512.0 MiB/s"}) || v.wrapped+v.scrolled != 0 {
			t.Errorf("screen %q (%d wrapped, %d scrolled)", got, v.wrapped, v.scrolled)
		}
		v.Write([]byte(end))
		got := v.lines()
		if !done {
			// The last state stays, and the line is ended.
			if end != "\r\033[Kpack 4.0 GiB / 4.0 GiB 100% 512.0 MiB/s\n" || len(got) != 1 {
				t.Errorf("finish wrote %q; screen %q", end, got)
			}
			continue
		}
		// The summary replaces the line; printed once, it may wrap.
		summary := "pack: 25.00% (4.0 GiB => 1.0 GiB, disk.vma.zst), 8.0s, 512.0 MiB/s"
		if end != "\r\033[J"+summary+"\n" || strings.Join(got, "") != summary {
			t.Errorf("done wrote %q; screen %q", end, got)
		}
		if n := strings.Count(rig.err.String(), "\n"); n != 1 {
			t.Errorf("%d newlines in all, want 1 (the summary's)", n)
		}
	}
}

// TestPlainLines: off a terminal nothing is drawn unless --progress asks
// for a plain line every five seconds; --quiet turns a terminal off too.
func TestPlainLines(t *testing.T) {
	for _, tc := range []struct {
		tty, progress, quiet bool
		want                 string
	}{
		{false, false, false, ""},
		{true, false, true, ""},
		{false, true, false, "pack 1.0 GiB / 4.0 GiB 25% 204.8 MiB/s ETA 15s\n" +
			"pack 2.0 GiB / 4.0 GiB 50% 204.8 MiB/s ETA 10s\n" +
			"pack 3.0 GiB / 4.0 GiB 75% 204.8 MiB/s ETA 5s\n" +
			"pack: 25.00% (4.0 GiB => 1.0 GiB, d.vma.zst), 20.0s, 204.8 MiB/s\n"},
		// What passes quiet besides --quiet (--json) yields to --progress.
		{false, true, true, "pack 1.0 GiB / 4.0 GiB 25% 204.8 MiB/s ETA 15s\n" +
			"pack 2.0 GiB / 4.0 GiB 50% 204.8 MiB/s ETA 10s\n" +
			"pack 3.0 GiB / 4.0 GiB 75% 204.8 MiB/s ETA 5s\n" +
			"pack: 25.00% (4.0 GiB => 1.0 GiB, d.vma.zst), 20.0s, 204.8 MiB/s\n"},
	} {
		rig := newDisplayRig(tc.tty, 0, 0, tc.progress)
		m := newMeter(rig.s, tc.quiet, "pack", 4<<30)
		drawing := len(rig.every) > 0
		if drawing != (tc.want != "") || drawing && !slices.Equal(rig.every, []time.Duration{linesEvery}) {
			t.Fatalf("%+v: ticker intervals %v", tc, rig.every)
		}
		for range 3 {
			m.Update(1 << 30)
			if drawing {
				rig.tick(t, 5*time.Second)
			} else {
				rig.clock.advance(5 * time.Second)
			}
		}
		m.Update(1 << 30)
		rig.clock.advance(5 * time.Second)
		m.Done(1<<30, "d.vma.zst")
		if got := rig.err.String(); got != tc.want {
			t.Errorf("%+v: stderr\n%q, want\n%q", tc, got, tc.want)
		}
	}
}

// TestDeployThreeTargets renders three targets on a 40-column terminal:
// step lines go above a block of three status lines, which each redraw
// replaces in place (two newlines per redraw: between its lines, none
// after), and the targets' summaries replace the block at the end.
func TestDeployThreeTargets(t *testing.T) {
	rig := newDisplayRig(true, 40, 24, false)
	r := newDeployRenderer(rig.s, false)
	v := newVT(t, 40, 24)
	var logs []string
	names := []string{"web1", "web2", "web3"}
	step := func(name string, s deploy.Step, detail string) {
		r.event(deploy.StepStarted{Target: name, Step: s, Detail: detail})
		logs = append(logs, name+": "+detail)
		v.Write([]byte(rig.err.next()))
	}
	// check redraws and compares the block with want.
	check := func(want ...string) {
		t.Helper()
		rig.tick(t, time.Second)
		frame := rig.err.next()
		if !strings.HasPrefix(frame, "\r\033[2A") || strings.Count(frame, "\n") != 2 {
			t.Errorf("redraw %q", frame)
		}
		v.Write([]byte(frame))
		got := v.lines()
		if !slices.Equal(got, append(slices.Clone(logs), want...)) || v.wrapped+v.scrolled != 0 {
			t.Errorf("screen (%d wrapped, %d scrolled):\n%s\nwant the logs, then:\n%s", v.wrapped, v.scrolled,
				strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	for _, n := range names {
		step(n, deploy.StepConnect, "SSH to "+n)
	}
	check("web1 connect", "web2 connect", "web3 connect")
	step("web1", deploy.StepTransfer, "upload a.vma.zst")
	r.event(deploy.BytesSent{Target: "web1", Read: 0, Sent: 0, Total: 4 << 30})
	step("web2", deploy.StepRestore, "zstd -dc | qmrestore -")
	r.event(deploy.BytesSent{Target: "web2", Read: 0, Sent: 0, Total: 4 << 30})
	rig.clock.advance(time.Second)
	r.event(deploy.BytesSent{Target: "web1", Read: 1 << 30, Sent: 256 << 20, Total: 4 << 30})
	r.event(deploy.BytesSent{Target: "web2", Read: 2 << 30, Sent: 512 << 20, Total: 4 << 30})
	r.event(deploy.RestoreProgress{Target: "web2", Percent: 48})
	// web2 streams (ssh-stream): bytes and the node's own progress at once.
	check("web1 transfer 25% 512.0 MiB/s ETA 6s", "web2 restore 50% 1.0 GiB/s restored 48%", "web3 connect")
	r.event(deploy.StepFinished{Target: "web1", Step: deploy.StepTransfer, Elapsed: 3 * time.Second})
	step("web1", deploy.StepRestore, "qmrestore a.vma.zst 100")
	r.event(deploy.BytesSent{Target: "web1", Read: 4 << 30, Sent: 1 << 30, Total: 4 << 30})
	r.event(deploy.RestoreProgress{Target: "web1", Percent: 37})
	r.event(deploy.StepFinished{Target: "web3", Step: deploy.StepConnect, Err: errors.New("connection\nrefused")})
	logs = append(logs, "web3: connect failed: connection refused")
	v.Write([]byte(rig.err.next()))
	check("web1 restore 37% sent 1.0 GiB", "web2 restore 50% restored 48%", "web3 connect")
	r.event(deploy.BytesSent{Target: "web2", Read: 4 << 30, Sent: 1 << 30, Total: 4 << 30})
	r.event(deploy.RestoreProgress{Target: "web2", Percent: 100})
	check("web1 restore 37% sent 1.0 GiB", "web2 restore 100% sent 1.0 GiB", "web3 connect")

	rig.clock.advance(time.Second)
	r.finish()
	want := "\r\033[2A\033[J" +
		"web1: done, 25.00% (4.0 GiB => 1.0 GiB sent), 6.0s, 2.0 GiB/s\n" +
		"web2: done, 25.00% (4.0 GiB => 1.0 GiB sent), 6.0s, 1.3 GiB/s\n" +
		"web3: connect failed, 6.0s\n"
	if got := rig.err.next(); got != want {
		t.Errorf("finish wrote\n%q, want\n%q", got, want)
	}
}

// TestDeployPlainLines: off a terminal with --progress, each step is a
// line, and every five seconds each target gets one; without it, only
// warnings are printed.
func TestDeployPlainLines(t *testing.T) {
	for _, progress := range []bool{false, true} {
		rig := newDisplayRig(false, 0, 0, progress)
		r := newDeployRenderer(rig.s, false)
		for _, n := range []string{"a", "b", "c"} {
			r.event(deploy.StepStarted{Target: n, Step: deploy.StepTransfer, Detail: "upload " + n})
			r.event(deploy.BytesSent{Target: n, Total: 1 << 30})
		}
		r.event(deploy.Warning{Target: "b", Message: "config line left out"})
		for i := int64(1); i <= 2; i++ {
			rig.clock.advance(5 * time.Second)
			for _, n := range []string{"a", "b", "c"} {
				r.event(deploy.BytesSent{Target: n, Read: i * 100 << 20, Sent: i * 50 << 20, Total: 1 << 30})
			}
			if progress {
				rig.tick(t, 0)
			}
		}
		r.finish()
		want := "vmatool deploy: b: config line left out\n"
		if progress {
			want = "a: upload a\nb: upload b\nc: upload c\n" + want
			for i := 1; i <= 2; i++ {
				for _, n := range []string{"a", "b", "c"} {
					want += fmt.Sprintf("%s transfer %d.0 MiB / 1.0 GiB %d%% 20.0 MiB/s ETA %ds sent %d.0 MiB\n",
						n, i*100, i*100*100/1024, []int{46, 41}[i-1], i*50)
				}
			}
			for _, n := range []string{"a", "b", "c"} {
				want += n + ": done, 50.00% (200.0 MiB => 100.0 MiB sent), 10.0s, 20.0 MiB/s\n"
			}
		}
		if got := rig.err.String(); got != want {
			t.Errorf("progress=%v: stderr\n%s\nwant\n%s", progress, got, want)
		}
	}
}

// TestBlockTallerThanScreen: with more targets than the screen has lines,
// the oldest give way to a count, so the block still redraws in place.
func TestBlockTallerThanScreen(t *testing.T) {
	rig := newDisplayRig(true, 40, 4, false)
	r := newDeployRenderer(rig.s, false)
	v := newVT(t, 40, 4)
	for i := range 5 {
		r.event(deploy.BytesSent{Target: fmt.Sprintf("t%d", i), Total: 1 << 20})
	}
	for range 3 {
		rig.tick(t, time.Second)
		v.Write([]byte(rig.err.next()))
		want := []string{"(3 more above)", "t3", "t4"}
		if got := v.lines(); !slices.Equal(got, want) || v.scrolled != 0 || v.wrapped != 0 {
			t.Errorf("screen %q (%d scrolled), want %q", got, v.scrolled, want)
		}
	}
	r.finish()
}
