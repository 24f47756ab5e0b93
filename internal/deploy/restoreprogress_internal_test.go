package deploy

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestRestorePercent(t *testing.T) {
	for _, tc := range []struct {
		line string
		want float64
		ok   bool
	}{
		{"progress 1% (read 171835392 bytes, duration 1 sec)", 1, true},
		{"progress 100% (read 17179869184 bytes, duration 20 sec)", 100, true},
		{"  progress 7% (read 1 bytes, duration 0 sec)\r", 7, true},
		{"transferred 1.0 GiB of 32.0 GiB (3.12%)", 3.12, true},
		{"transferred 3145728 of 3145728 bytes (100.00%)", 100, true},
		{"progress 101% (read 1 bytes, duration 0 sec)", 0, false},
		{"progress x% (read)", 0, false},
		{"progress without a percentage", 0, false},
		{"total bytes read 17179869184, sparse bytes 12563259392 (73.1%)", 0, false},
		{"transferred (50%) of something else", 0, false},
		{"map 'drive-scsi0' to '/dev/pve/vm-500-disk-0' (write zeros = 0)", 0, false},
	} {
		got, ok := restorePercent(tc.line)
		if got != tc.want || ok != tc.ok {
			t.Errorf("restorePercent(%q) = %v, %v; want %v, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

// TestRestoreLines writes qmrestore's output in awkward pieces: lines
// split across writes, CR line ends, a repeated percentage, and a line
// too long to be a progress line; each change is reported once.
func TestRestoreLines(t *testing.T) {
	var mu sync.Mutex
	var got []float64
	j := &job{t: &Target{Name: "web"}, emit: func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		if p, ok := e.(RestoreProgress); ok && p.Target == "web" {
			got = append(got, p.Percent)
		}
	}}
	stdout, stderr, withReason := j.restoreOutput()
	out := "restore vma archive: vma extract -v -r /var/tmp/x.fifo - /var/tmp/x\n" +
		"CFG: size: 458 name: qemu-server.conf\nprogress 1% (read 17 bytes, duration 0 sec)\n" +
		"progress 1% (read 18 bytes, duration 0 sec)\r\nprogress 2% (read 34 bytes, duration 1 sec)\r" +
		"progress 3" + strings.Repeat("0", maxRestoreLine) + "% (read)\n" +
		"progress 50% (read 850 bytes, duration 2 sec)\n" +
		"progress 100% (read 1700 bytes, duration 3 sec)" // no line end yet
	for i := 0; i < len(out); i += 7 {
		stdout.Write([]byte(out[i:min(i+7, len(out))]))
	}
	// The other stream repeating the last percentage adds nothing.
	stderr.Write([]byte("progress 50% (read 850 bytes, duration 2 sec)\n"))
	stdout.Write([]byte("\n"))
	if want := []float64{1, 2, 50, 100}; !slices.Equal(got, want) {
		t.Errorf("reported %v, want %v", got, want)
	}
	failed := errors.New("qmrestore exited with status 255")
	if err := withReason(failed); err != failed {
		t.Errorf("no vma line printed, yet the error is %v", err)
	}
	// vma's own report of its failure goes with the task's output; the
	// error names it.
	stdout.Write([]byte("vma: restore failed - short vma extent (2801664 < 3801600)\nerror before or during data restore\n"))
	if err := withReason(failed); !errors.Is(err, failed) || err.Error() != "qmrestore exited with status 255 (vma: restore failed - short vma extent (2801664 < 3801600))" {
		t.Errorf("error %v", err)
	}
}
