package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal: the side a test reads, and the side a
// child gets as its terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Fatalf("unlocking the pty: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Fatalf("pty number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatalf("opening the pty's terminal side: %v", err)
	}
	return m, s
}

// vmatoolTTY runs vmatool with standard output on a terminal; stdout is
// what reached the terminal.
func vmatoolTTY(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	master, slave := openPTY(t)
	defer master.Close()
	cmd := exec.Command(vmatoolBin, args...)
	cmd.Env = append(os.Environ(), "TZ=UTC", "SOURCE_DATE_EPOCH=")
	cmd.Stdin = stdin
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = slave, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	read := make(chan []byte)
	go func() {
		// The read ends with EIO once the child, the last holder of the
		// terminal side, has exited.
		b, _ := io.ReadAll(master)
		read <- b
	}()
	err := cmd.Wait()
	out := <-read
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{stdout: strings.ReplaceAll(string(out), "\r\n", "\n"), stderr: errb.String(), code: code}
}

// TestRefuseArchiveToTerminal: pack -o - on a terminal filled it with
// binary; now it refuses, as zstd does, and so does convert ... -.
func TestRefuseArchiveToTerminal(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, dir, "a.raw", 256<<10)
	v02 := filepath.Join(vectorDir, "v02-two-disks.vma")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"pack", "-q", "-o", "-", img}, "refusing to write an archive to a terminal; redirect it or use -o FILE"},
		{[]string{"pack", "-q", "-o", "-", "--compress", "zstd", img}, "refusing to write an archive to a terminal"},
		{[]string{"convert", "-q", "-O", "vma", img, "-"}, "refusing to write an archive to a terminal"},
		{[]string{"convert", "-q", "-d", "scsi0", v02, "-"}, "refusing to write a disk image to a terminal; redirect it"},
		{[]string{"convert", "-q", img, "-"}, "refusing to write a disk image to a terminal"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := vmatoolTTY(t, nil, tc.args...)
			assertUsage(t, r, tc.want)
			if r.stdout != "" {
				t.Errorf("%d bytes reached the terminal", len(r.stdout))
			}
		})
	}
	// Not a terminal: the same command line writes the archive.
	if r := runInProcess(t, nil, nil, "pack", "-q", "-o", "-", img).mustSucceed(t); !strings.HasPrefix(r.stdout, "VMA\x00") {
		t.Error("pack -o - to a pipe wrote no archive")
	}
}

// TestVerifySummaryOnTerminal: verify is silent in a pipe, says one line
// to a person at a terminal, and nothing with --quiet.
func TestVerifySummaryOnTerminal(t *testing.T) {
	v02 := filepath.Join(vectorDir, "v02-two-disks.vma")
	r := vmatoolTTY(t, nil, "verify", v02)
	line := regexp.MustCompile(`^` + regexp.QuoteMeta(v02) + `: OK, 2 devices, 1\.5 MiB, 648\.0 KiB stored, uuid b2ffdba1-db61-4dc2-af39-1a2646acc612, in \d+\.\d s\n$`)
	if r.code != 0 || !line.MatchString(r.stdout) || r.stderr != "" {
		t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	for _, args := range [][]string{{"verify", "-q", v02}} {
		if r := vmatoolTTY(t, nil, args...); r.code != 0 || r.stdout != "" {
			t.Errorf("%v: exit %d, stdout %q", args, r.code, r.stdout)
		}
	}
	if r := vmatoolTTY(t, nil, "verify", "--json", v02); r.code != 0 || !strings.HasPrefix(r.stdout, "{") || strings.Contains(r.stdout, ": OK,") {
		t.Errorf("--json: exit %d, stdout %q", r.code, r.stdout)
	}
	if r := vmatoolTTY(t, nil, "verify", "-v", v02); r.code != 0 || strings.Contains(r.stdout, ": OK,") || !strings.Contains(r.stdout, "CTIME:") {
		t.Errorf("-v: exit %d, stdout %q", r.code, r.stdout)
	}
	if r := runInProcess(t, nil, nil, "verify", v02).mustSucceed(t); r.stdout != "" {
		t.Errorf("verify to a pipe printed %q", r.stdout)
	}
	// A failure is one line on standard error, and nothing on the terminal.
	r = vmatoolTTY(t, nil, "verify", filepath.Join(vectorDir, "e02-extent-md5.vma"))
	assertOneLine(t, r, "extent checksum mismatch")
	if r.stdout != "" {
		t.Errorf("a failed verify printed %q on the terminal", r.stdout)
	}
}
