//go:build unix

package qcow2_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmatool/vmatool/qcow2"
)

// specials makes a FIFO, a directory and a listening socket in dir, and
// returns their names with the character device /dev/null and what the
// error says each is.
func specials(t *testing.T, dir string) map[string]string {
	t.Helper()
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "folder"), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(dir, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return map[string]string{"fifo": "named pipe", "folder": "directory", "sock": "socket", "/dev/null": "character device"}
}

// within runs f, failing the test if it does not return within 20 s: a
// blocked open(2) would never return.
func within(t *testing.T, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("hung for 20 s")
	}
}

// TestBackingNotRegular names a FIFO, a character device, a directory and
// a socket as backing files, of the image opened and of one further down.
// Opening the FIFO used to block forever. Each is refused at once, with a
// *BackingError naming the image whose header names it and where.
func TestBackingNotRegular(t *testing.T) {
	dir := t.TempDir()
	for name, what := range specials(t, dir) {
		t.Run(what, func(t *testing.T) {
			c := crafted{clusterBits: 16, size: 1 << 20, l1Size: 1, backing: name, backingFormat: "raw"}
			base := strings.ReplaceAll(what, " ", "-")
			top := c.write(t, filepath.Join(dir, base+".qcow2"))
			mid := c.write(t, filepath.Join(dir, base+"-mid.qcow2"))
			deep := crafted{clusterBits: 16, size: 1 << 20, l1Size: 1, backing: base + "-mid.qcow2", backingFormat: "qcow2"}.
				write(t, filepath.Join(dir, base+"-deep.qcow2"))
			for _, tc := range []struct{ open, namer string }{{top, top}, {deep, mid}} {
				var err error
				within(t, func() { _, err = qcow2.Open(tc.open) })
				var bErr *qcow2.BackingError
				if !errors.Is(err, qcow2.ErrNotRegular) || !errors.Is(err, qcow2.ErrBackingFile) || !errors.As(err, &bErr) {
					t.Fatalf("Open(%s) = %v, want a *BackingError with ErrNotRegular", tc.open, err)
				}
				if bErr.Image != tc.namer || bErr.Name != name || bErr.Offset != int64(c.nameOffset()) {
					t.Errorf("BackingError %+v, want image %s, name %q at %#x", bErr, tc.namer, name, c.nameOffset())
				}
				msg := err.Error()
				for _, want := range []string{tc.namer, fmt.Sprintf("%q", name), fmt.Sprintf("backing_file_offset %#x", c.nameOffset()), what, "not a regular file"} {
					if !strings.Contains(msg, want) {
						t.Errorf("%q does not mention %q", msg, want)
					}
				}
			}
			// SkipBacking opens the image without touching the file.
			var img *qcow2.Image
			var err error
			within(t, func() { img, err = qcow2.Open(top, qcow2.WithBacking(qcow2.SkipBacking)) })
			if err != nil {
				t.Fatal(err)
			}
			img.Close()
		})
	}
	if _, err := qcow2.OpenBackingFile(filepath.Join(dir, "x.qcow2"), "fifo"); !errors.Is(err, qcow2.ErrNotRegular) {
		t.Errorf("OpenBackingFile of a FIFO = %v", err)
	}
}
