package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeStreams runs commands in process, with stderr a terminal or not.
func fakeStreams(tty bool) (*streams, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return &streams{in: strings.NewReader(""), out: &out, err: &errb, errisTTY: tty, now: time.Now,
		getenv: func(string) string { return "" }}, &out, &errb
}

func TestProgressOnlyOnATerminal(t *testing.T) {
	archive := filepath.Join(vectorDir, "v02-two-disks.vma")
	for _, tc := range []struct {
		tty   bool
		args  []string
		wants bool
	}{
		{true, []string{"verify", archive}, true},
		{true, []string{"verify", "--quiet", archive}, false},
		{false, []string{"verify", archive}, false},
		{true, []string{"unpack", archive, "DIR"}, true},
		{false, []string{"unpack", archive, "DIR"}, false},
	} {
		s, _, errb := fakeStreams(tc.tty)
		for i, a := range tc.args {
			if a == "DIR" {
				tc.args[i] = filepath.Join(t.TempDir(), "out")
			}
		}
		if code := run(context.Background(), s, tc.args); code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errb)
		}
		got := errb.String()
		drew := strings.Contains(got, "\r\033[K") && strings.Contains(got, "100%") && strings.Contains(got, "/s")
		if drew != tc.wants || (!tc.wants && got != "") {
			t.Errorf("tty=%v %v: stderr %q", tc.tty, tc.args, got)
		}
	}
}

func TestMeterText(t *testing.T) {
	m := &meter{label: "pack", total: 4 << 30, start: time.Now().Add(-2 * time.Second)}
	m.Update(1 << 30)
	m.sent.Store(300 << 20)
	got := m.text(true)
	for _, want := range []string{"pack 1.0 GiB / 4.0 GiB 25%", "MiB/s", "ETA 6s", "(sent 300.0 MiB)"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
}
