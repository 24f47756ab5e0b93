package remote_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmatool/vmatool/internal/remote"
	"github.com/vmatool/vmatool/internal/remote/sshtest"
)

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// assertGone fails unless path disappears within a few seconds; the
// remote side cleans up asynchronously after a dropped connection.
func assertGone(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := os.Lstat(path)
		if os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still exists (stat: %v)", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func assertAbsent(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("%s exists (stat: %v)", path, err)
	}
}

func TestUpload(t *testing.T) {
	srv := sshtest.Start(t)
	c := dial(t, srv.Config())
	for _, size := range []int{0, 1, 65536, 4<<20 + 12345} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			dir := t.TempDir()
			data := randomBytes(t, size)
			var last int64
			calls := 0
			err := c.Upload(context.Background(), bytes.NewReader(data), dir, "vzdump-qemu-100.vma.zst",
				func(n int64) { last = n; calls++ })
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(dir, "vzdump-qemu-100.vma.zst"))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("remote file: %d bytes, err %v; want %d bytes", len(got), err, size)
			}
			assertAbsent(t, filepath.Join(dir, "vzdump-qemu-100.vma.zst"+remote.PartSuffix))
			if last != int64(size) || (size > 0 && calls == 0) {
				t.Errorf("progress: last %d after %d calls, want %d", last, calls, size)
			}
		})
	}
}

func TestUploadExisting(t *testing.T) {
	srv := sshtest.Start(t)
	c := dial(t, srv.Config())
	ctx := context.Background()
	dir := t.TempDir()
	final := filepath.Join(dir, "a.vma")
	os.WriteFile(final, []byte("old"), 0o644)

	err := c.Upload(ctx, strings.NewReader("new"), dir, "a.vma", nil)
	if !errors.Is(err, remote.ErrExists) {
		t.Fatalf("err = %v, want ErrExists", err)
	}
	if b, _ := os.ReadFile(final); string(b) != "old" {
		t.Errorf("existing file changed to %q", b)
	}
	assertAbsent(t, final+remote.PartSuffix)

	if err := c.Upload(ctx, strings.NewReader("new"), dir, "a.vma", nil, remote.Overwrite(true)); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(final); string(b) != "new" {
		t.Errorf("file = %q after overwrite", b)
	}
}

func TestUploadHostileNames(t *testing.T) {
	srv := sshtest.Start(t)
	c := dial(t, srv.Config())
	home := t.TempDir()
	dir := filepath.Join(home, "dump dir $(touch pwned) 'q' `id`")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	names := []string{
		"with space.vma",
		"it's \"quoted\".vma",
		"$(touch pwned).vma",
		"`touch pwned`.vma",
		"semi;touch pwned.vma",
		"new\nline.vma",
		"-rf",
		"--overwrite=1",
		"*",
		"glob[1]?.vma",
		"tab\t$HOME.vma",
	}
	for _, name := range names {
		content := "content of " + name
		if err := c.Upload(context.Background(), strings.NewReader(content), dir, name, nil); err != nil {
			t.Errorf("Upload(%q): %v", name, err)
			continue
		}
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != content {
			t.Errorf("file %q: %q, %v", name, b, err)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != len(names) {
		var got []string
		for _, e := range ents {
			got = append(got, e.Name())
		}
		t.Errorf("directory holds %q, want exactly the %d uploaded names", got, len(names))
	}
	for _, p := range []string{filepath.Join(home, "pwned"), filepath.Join(dir, "pwned"), "pwned"} {
		assertAbsent(t, p)
	}
	for _, bad := range []string{"", ".", "..", "a/b", "nul\x00"} {
		if err := c.Upload(context.Background(), strings.NewReader("x"), dir, bad, nil); err == nil {
			t.Errorf("Upload accepted name %q", bad)
		}
	}
}

// gatedReader yields size random bytes; after first bytes it closes
// reached and waits for release before going on.
type gatedReader struct {
	r       io.Reader
	first   int64
	read    int64
	reached chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGatedReader(t *testing.T, size, first int) *gatedReader {
	return &gatedReader{
		r:       bytes.NewReader(randomBytes(t, size)),
		first:   int64(first),
		reached: make(chan struct{}),
		release: make(chan struct{}),
	}
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if g.read >= g.first {
		g.once.Do(func() { close(g.reached) })
		<-g.release
	} else if rest := g.first - g.read; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := g.r.Read(p)
	g.read += int64(n)
	return n, err
}

// waitPart waits until the .part holds data, so a failure injected next
// hits a transfer in flight.
func waitPart(t *testing.T, part string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if fi, err := os.Stat(part); err == nil && fi.Size() > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never received data", part)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestUploadInterrupted breaks uploads in flight in every way the brief
// names and checks that neither the file nor its .part is left behind.
func TestUploadInterrupted(t *testing.T) {
	srv := sshtest.Start(t)
	boom := errors.New("compressor crashed")
	tests := []struct {
		name string
		// interrupt breaks the upload once the .part holds data; it may
		// return an error for the reader to fail with.
		interrupt func(t *testing.T, c *remote.Client, cancel context.CancelFunc) error
		wantErr   error
	}{
		{name: "server connection killed", wantErr: remote.ErrConnectionLost,
			interrupt: func(t *testing.T, c *remote.Client, _ context.CancelFunc) error {
				if n := srv.DropConnections(t); n == 0 {
					t.Errorf("no sshd connection process to kill")
				}
				return nil
			}},
		{name: "client closed", interrupt: func(t *testing.T, c *remote.Client, _ context.CancelFunc) error {
			c.Close()
			return nil
		}},
		{name: "context cancelled", wantErr: context.Canceled,
			interrupt: func(t *testing.T, c *remote.Client, cancel context.CancelFunc) error {
				cancel()
				return nil
			}},
		{name: "reader fails", wantErr: boom,
			interrupt: func(*testing.T, *remote.Client, context.CancelFunc) error { return boom }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, srv.Config())
			dir := t.TempDir()
			final := filepath.Join(dir, "big.vma.zst")
			// 5 MiB first: more than one frame, so data is on disk.
			g := newGatedReader(t, 16<<20, 5<<20)
			var readErr error
			r := readerFunc(func(p []byte) (int, error) {
				if readErr != nil {
					return 0, readErr
				}
				return g.Read(p)
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- c.Upload(ctx, r, dir, "big.vma.zst", nil) }()

			<-g.reached
			waitPart(t, final+remote.PartSuffix)
			readErr = tt.interrupt(t, c, cancel)
			close(g.release)

			select {
			case err := <-errc:
				if err == nil {
					t.Fatal("Upload succeeded")
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("err = %v, want %v", err, tt.wantErr)
				}
				t.Logf("Upload: %v", err)
			case <-time.After(20 * time.Second):
				t.Fatal("Upload did not return")
			}
			assertGone(t, final+remote.PartSuffix)
			assertAbsent(t, final)
		})
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestUploadDiskFull fills the node's disk mid-upload. A 1 MiB tmpfs is
// the real thing but needs mount privileges; a .part that is a symbolic
// link to /dev/full gets the same ENOSPC from the kernel without them.
func TestUploadDiskFull(t *testing.T) {
	srv := sshtest.Start(t)
	c := dial(t, srv.Config())
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
	}{
		{name: "tmpfs", setup: func(t *testing.T, dir string) {
			out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput()
			if err != nil {
				// A missing privilege, not a missing tool: skip even under
				// VMATOOL_REQUIRE_TOOLS, since dev-full still runs.
				t.Skipf("cannot mount a tmpfs here (%v: %s); the /dev/full case covers ENOSPC", err, bytes.TrimSpace(out))
			}
			t.Cleanup(func() { exec.Command("umount", dir).Run() })
		}},
		{name: "dev-full", setup: func(t *testing.T, dir string) {
			if err := os.Symlink("/dev/full", filepath.Join(dir, "big.vma"+remote.PartSuffix)); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			err := c.Upload(context.Background(), bytes.NewReader(randomBytes(t, 6<<20)), dir, "big.vma", nil)
			var exitErr *remote.ExitError
			if !errors.As(err, &exitErr) {
				t.Fatalf("err = %v, want an *ExitError", err)
			}
			if !strings.Contains(err.Error(), "No space left on device") {
				t.Errorf("error does not say the disk is full: %v", err)
			}
			assertGone(t, filepath.Join(dir, "big.vma"+remote.PartSuffix))
			assertAbsent(t, filepath.Join(dir, "big.vma"))
			if fi, err := os.Stat("/dev/full"); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
				t.Errorf("/dev/full was harmed: %v %v", fi, err)
			}
		})
	}
}
