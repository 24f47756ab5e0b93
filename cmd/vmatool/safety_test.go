package main

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// craft packs an archive, then renames things inside it the way a hostile
// archive would, fixing the header checksum so only the names are wrong.
func craft(t *testing.T, dir string, renames map[string]string) string {
	t.Helper()
	img := testImage(t, dir, "a.raw", 128<<10)
	conf := writeFile(t, filepath.Join(dir, "ZZZZZZZ"), []byte("memory: 1\n"))
	out := filepath.Join(dir, "crafted.vma")
	runInProcess(t, nil, nil, "create", out, "-c", conf, "-d", "format=raw:drive-scsi0="+img).mustSucceed(t)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	size := binary.BigEndian.Uint32(b[56:])
	for from, to := range renames {
		if len(from) != len(to) {
			t.Fatal("renames must keep lengths")
		}
		i := bytes.Index(b[:size], []byte(from+"\x00"))
		if i < 0 {
			t.Fatalf("%q not in header", from)
		}
		copy(b[i:], to)
	}
	clear(b[32:48])
	sum := md5.Sum(b[:size])
	copy(b[32:], sum[:])
	return writeFile(t, out, b)
}

func TestNamesCannotEscape(t *testing.T) {
	for _, tc := range []struct {
		name    string
		renames map[string]string
	}{
		{"config ../evil", map[string]string{"ZZZZZZZ": "../evil"}},
		{"config /etc/xx", map[string]string{"ZZZZZZZ": "/tmp/xx"}},
		{"config ..", map[string]string{"ZZZZZZZ": "..\x00ZZZZ"}},
		{"device a/../../xyz", map[string]string{"drive-scsi0": "a/../../xyz"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			archive := craft(t, t.TempDir(), tc.renames)
			runInProcess(t, nil, nil, "list", archive).mustSucceed(t) // readable, names and all
			target := filepath.Join(root, "a", "b")
			for _, cmd := range [][]string{{"unpack", archive, target}, {"extract", archive, target}} {
				r := runInProcess(t, nil, nil, cmd...)
				if r.code != 1 || !strings.Contains(r.stderr, "unsafe name") {
					t.Errorf("%s: exit %d, %q; want a refusal", cmd[0], r.code, r.stderr)
				}
			}
			filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
				if err == nil && !info.IsDir() {
					t.Errorf("%s was written", p)
				}
				return nil
			})
			if _, err := os.Stat("/tmp/xx"); err == nil {
				t.Error("/tmp/xx was written")
			}
		})
	}
}

func TestInterruptedUnpackLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, dir, "a.raw", 8<<20)
	archive := filepath.Join(dir, "a.vma")
	runInProcess(t, nil, nil, "pack", "-q", "-o", archive, img).mustSucceed(t)
	data, _ := os.ReadFile(archive)

	target := filepath.Join(dir, "out")
	cmd := exec.Command(vmatoolBin, "unpack", "-q", "-", target)
	stdin, _ := cmd.StdinPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdin.Write(data[:len(data)/2]) // header and some extents, then nothing
	deadline := time.Now().Add(5 * time.Second)
	for {
		if staged, _ := filepath.Glob(filepath.Join(dir, ".vmatool-*", "*")); len(staged) > 0 {
			break // the staging folder has files: the unpack is under way
		}
		if time.Now().After(deadline) {
			t.Fatal("unpack never started writing")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	stdin.Close()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Errorf("exit %v, want 130; stderr %q", err, stderr.String())
	}
	assertGone(t, target)
}

func TestSIGTERMWhileBlockedOnOutput(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, dir, "a.raw", 8<<20)
	cmd := exec.Command(vmatoolBin, "pack", "-q", "-o", "-", img)
	stdout, _ := cmd.StdoutPipe() // never read: pack blocks writing
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	stdout.Close()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Errorf("exit %v, want 130", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v to stop", d)
	}
}
