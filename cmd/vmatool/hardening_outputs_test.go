package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tree is a folder's content: relative path to "dir", "file <sha256>" or
// "link <target>", hidden entries included.
type tree map[string]string

func snapshot(t *testing.T, root string) tree {
	t.Helper()
	m := tree{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case rel == ".":
		case d.IsDir():
			m[rel] = "dir"
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			m[rel] = "link " + target
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s := sha256.Sum256(b)
			m[rel] = "file " + hex.EncodeToString(s[:])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// with returns a copy of tr plus the entries of more under prefix.
func (tr tree) with(prefix string, more tree) tree {
	m := maps.Clone(tr)
	for p, v := range more {
		m[filepath.Join(prefix, p)] = v
	}
	return m
}

func (tr tree) String() string {
	var lines []string
	for _, p := range slices.Sorted(maps.Keys(tr)) {
		v := tr[p]
		if strings.HasPrefix(v, "file ") {
			v = v[:17]
		}
		lines = append(lines, p+": "+v)
	}
	return strings.Join(lines, ", ")
}

func assertTree(t *testing.T, what string, got, want tree) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Errorf("%s:\n got %v\nwant %v", what, got, want)
	}
}

// unpacked is what a clean unpack of archive writes into a new folder.
func unpacked(t *testing.T, archive string) tree {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "clean")
	vmatool(t, nil, nil, "unpack", "-q", archive, dir).mustSucceed(t).assertRSS(t)
	return snapshot(t, dir)
}

// pausedRun runs vmatool with VMATOOL_TEST_PAUSE=pause, waits until it
// reports that it stopped at that step, sends sig and waits for the exit.
func pausedRun(t *testing.T, pause string, sig os.Signal, args ...string) result {
	t.Helper()
	cmd := exec.Command(vmatoolBin, args...)
	cmd.Env = append(os.Environ(), "TZ=UTC", "VMATOOL_TEST_PAUSE="+pause)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	peak := measure(cmd)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	step, _, _ := strings.Cut(pause, ":")
	marker := "vmatool: test pause at " + step
	var errText strings.Builder
	paused := make(chan struct{})
	wasPaused := paused
	eof := make(chan struct{})
	go func() {
		defer close(eof)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			errText.WriteString(sc.Text() + "\n")
			if sc.Text() == marker && paused != nil {
				close(paused)
				paused = nil
			}
		}
	}()
	finish := func() result {
		t.Helper()
		select {
		case <-eof:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-eof
			cmd.Wait()
			t.Fatalf("vmatool %v did not exit after %v; stderr: %s", args, sig, errText.String())
		}
		cmd.Wait()
		return result{stdout.String(), errText.String(), cmd.ProcessState.ExitCode(), peak()}
	}
	select {
	case <-wasPaused:
	case <-eof:
		r := finish()
		t.Fatalf("vmatool %v exited %d without pausing at %s; stderr: %s", args, r.code, step, r.stderr)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		r := finish()
		t.Fatalf("vmatool %v never paused at %s; stderr: %s", args, step, r.stderr)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	return finish()
}

// A signal at any step of a commit leaves the folder as it was, or with
// the complete set: the command undoes the journal itself (SIGINT, the
// command resumes) or the watchdog does (SIGTERM with the command stuck).
func TestInterruptedCommitLeavesFolderWhole(t *testing.T) {
	archive := filepath.Join(vectorDir, "v02-two-disks.vma") // 2 configs, 2 disks
	clean := unpacked(t, archive)
	if len(clean) != 4 {
		t.Fatalf("clean unpack wrote %v, want 4 files", clean)
	}
	const (
		untouched = "untouched"
		complete  = "complete"
	)
	type scenario struct {
		name string
		// setup prepares root and returns the target and extra arguments.
		setup func(t *testing.T, root string) (target string, flags []string)
		// completeAt is where the complete set lands, relative to root.
		completeAt string
	}
	fresh := scenario{"new nested folder", func(t *testing.T, root string) (string, []string) {
		return filepath.Join(root, "a", "b", "c"), nil
	}, filepath.Join("a", "b", "c")}
	existing := scenario{"existing folder", func(t *testing.T, root string) (string, []string) {
		writeFile(t, filepath.Join(root, "notes.txt"), []byte("keep"))
		return root, nil
	}, "."}
	force := scenario{"existing folder with --force", func(t *testing.T, root string) (string, []string) {
		writeFile(t, filepath.Join(root, "notes.txt"), []byte("keep"))
		writeFile(t, filepath.Join(root, "qemu-server.conf"), []byte("mine"))
		writeFile(t, filepath.Join(root, "disk-drive-scsi0.raw"), []byte("old disk"))
		return root, []string{"--force"}
	}, "."}
	extract := scenario{"extract", func(t *testing.T, root string) (string, []string) {
		return filepath.Join(root, "restore"), nil
	}, "restore"}

	for _, tc := range []struct {
		sc   scenario
		step string
		hang bool // SIGTERM while the command stays stuck: the watchdog cleans up
		want string
		code int
	}{
		{fresh, "staged", false, untouched, 130},
		{fresh, "staged", true, untouched, 130},
		{fresh, "committed", false, complete, 0},
		{fresh, "committed", true, complete, 130},
		{extract, "staged", false, untouched, 130},
		{extract, "staged", true, untouched, 130},
		{existing, "staged", false, untouched, 130},
		{existing, "movein-1", false, untouched, 130},
		{existing, "movein-3", false, untouched, 130},
		{existing, "movein-3", true, untouched, 130},
		{existing, "movein-4", false, complete, 0}, // all in: finishing beats undoing
		{existing, "movein-4", true, untouched, 130},
		{existing, "committed", false, complete, 0},
		{force, "staged", false, untouched, 130},
		{force, "aside-1", false, untouched, 130}, // during the move aside
		{force, "aside-1", true, untouched, 130},
		{force, "aside-2", false, untouched, 130}, // all aside, nothing in
		{force, "movein-1", false, untouched, 130},
		{force, "movein-2", true, untouched, 130},
		{force, "movein-3", false, untouched, 130},
		{force, "committed", false, complete, 0}, // in place, old not yet removed
		{force, "committed", true, complete, 130},
	} {
		mode, sig := "SIGINT", os.Signal(syscall.SIGINT)
		if tc.hang {
			mode, sig = "SIGTERM, stuck", syscall.SIGTERM
		}
		t.Run(fmt.Sprintf("%s/%s/%s", tc.sc.name, tc.step, mode), func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			target, flags := tc.sc.setup(t, root)
			before := snapshot(t, root)
			pause := tc.step
			if tc.hang {
				pause += ":hang"
			}
			args := append([]string{"unpack", "-q"}, flags...)
			if tc.sc.name == extract.name {
				args = []string{"extract"}
			}
			args = append(args, archive, target)
			r := pausedRun(t, pause, sig, args...)
			r.assertRSS(t)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d; stderr: %s", r.code, tc.code, r.stderr)
			}
			want := before
			if tc.want == complete {
				// The set, with what it replaced gone, beside the rest.
				want = before.with(tc.sc.completeAt, clean)
				for d := tc.sc.completeAt; d != "."; d = filepath.Dir(d) {
					want[d] = "dir"
				}
			}
			assertTree(t, tc.want+" after "+mode+" at "+tc.step, snapshot(t, root), want)
		})
	}
}

// --force never replaces a folder, and refuses before changing anything.
func TestForceLeavesConflictingFolderAlone(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "qemu-server.conf"), []byte("mine"))
	conflict := filepath.Join(root, "disk-drive-scsi0.raw")
	if err := os.Mkdir(conflict, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(conflict, "inside"), []byte("user data"))
	before := snapshot(t, root)
	r := vmatool(t, nil, nil, "unpack", "-q", "--force", filepath.Join(vectorDir, "v02-two-disks.vma"), root)
	r.assertRSS(t)
	if r.code != 1 || !strings.Contains(r.stderr, "disk-drive-scsi0.raw") || !strings.Contains(r.stderr, "is a directory") {
		t.Errorf("exit %d, stderr %q; want a refusal naming the folder", r.code, r.stderr)
	}
	assertTree(t, "after the refusal", snapshot(t, root), before)
}

// An archive's names may look like vmatool's own temporary names: they are
// outputs like any other. (A config named like Proxmox's tmp-disk-<dev>.raw
// would collide inside Proxmox's extract, so vma refuses to write one.)
func TestConfigNamedLikeTemporary(t *testing.T) {
	src := t.TempDir()
	img := testImage(t, src, "a.raw", 1<<20)
	var cfgArgs []string
	configs := map[string]string{
		tempPrefix + "0123456789ab": "temp-named config\n",
		tempPrefix + "new":          "another\n",
	}
	for name, data := range configs {
		cfgArgs = append(cfgArgs, "-c", writeFile(t, filepath.Join(src, name), []byte(data)))
	}
	archive := filepath.Join(src, "x.vma")
	runInProcess(t, nil, nil, append(append([]string{"pack", "-q", "-o", archive}, cfgArgs...), img)...).mustSucceed(t)

	check := func(t *testing.T, dir string) {
		t.Helper()
		want := []string{"disk-drive-scsi0.raw", "qemu-server.conf"}
		for name, data := range configs {
			want = append(want, name)
			if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != data {
				t.Errorf("config %s: %q, %v; want %q", name, b, err, data)
			}
		}
		slices.Sort(want)
		if got := dirNames(t, dir); !slices.Equal(got, want) {
			t.Errorf("%s holds %v, want %v", dir, got, want)
		}
		if fileSHA(t, filepath.Join(dir, "disk-drive-scsi0.raw")) != fileSHA(t, img) {
			t.Error("the disk differs from the packed image")
		}
	}
	root := t.TempDir()
	t.Run("extract", func(t *testing.T) {
		dir := filepath.Join(root, "e")
		vmatool(t, nil, nil, "extract", archive, dir).mustSucceed(t).assertRSS(t)
		check(t, dir)
	})
	t.Run("unpack", func(t *testing.T) {
		dir := filepath.Join(root, "u")
		vmatool(t, nil, nil, "unpack", "-q", archive, dir).mustSucceed(t).assertRSS(t)
		check(t, dir)
		vmatool(t, nil, nil, "unpack", "-q", "--force", archive, dir).mustSucceed(t).assertRSS(t)
		check(t, dir)
	})
	if got := dirNames(t, root); !slices.Equal(got, []string{"e", "u"}) {
		t.Errorf("beside the outputs: %v", got)
	}
}

// A target written with a trailing separator is the same folder, and its
// staging folder goes beside it.
func TestUnpackTargetWithTrailingSlash(t *testing.T) {
	archive := filepath.Join(vectorDir, "v01-single.vma")
	want := unpacked(t, archive)
	for _, cmd := range []string{"unpack", "extract"} {
		t.Run(cmd, func(t *testing.T) {
			root := t.TempDir()
			runInProcess(t, nil, nil, cmd, archive, filepath.Join(root, "out")+string(filepath.Separator)).mustSucceed(t)
			assertTree(t, "unpacked", snapshot(t, root), tree{"out": "dir"}.with("out", want))
		})
	}
}

// Folders made for the output go again on failure, and only those.
func TestFailedUnpackRemovesCreatedFolders(t *testing.T) {
	truncated := filepath.Join(vectorDir, "e03-truncated.vma")
	t.Run("nested new folder", func(t *testing.T) {
		root := t.TempDir()
		r := runInProcess(t, nil, nil, "unpack", "-q", truncated, filepath.Join(root, "a", "b", "c"))
		if r.code != 1 || !strings.Contains(r.stderr, "short extent") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
		assertEmptyDir(t, root)
	})
	t.Run("existing parent kept", func(t *testing.T) {
		root := t.TempDir()
		if err := os.Mkdir(filepath.Join(root, "a"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(root, "a", "x"), nil)
		before := snapshot(t, root)
		if r := runInProcess(t, nil, nil, "unpack", "-q", truncated, filepath.Join(root, "a", "b", "c")); r.code != 1 {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
		assertTree(t, "after the failure", snapshot(t, root), before)
	})
	t.Run("existing folder", func(t *testing.T) {
		root := t.TempDir()
		writeFile(t, filepath.Join(root, "qemu-server.conf"), []byte("mine"))
		before := snapshot(t, root)
		if r := runInProcess(t, nil, nil, "unpack", "-q", "--force", truncated, root); r.code != 1 {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
		assertTree(t, "after the failure", snapshot(t, root), before)
	})
	t.Run("extract", func(t *testing.T) {
		root := t.TempDir()
		if r := runInProcess(t, nil, nil, "extract", truncated, filepath.Join(root, "restore")); r.code != 1 {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
		assertEmptyDir(t, root)
	})
	t.Run("interrupted while reading", func(t *testing.T) {
		root := t.TempDir()
		data, err := os.ReadFile(filepath.Join(vectorDir, "v02-two-disks.vma"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(vmatoolBin, "unpack", "-q", "-", filepath.Join(root, "a", "b", "c"))
		stdin, _ := cmd.StdinPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		stdin.Write(data[:len(data)/2])
		deadline := time.Now().Add(10 * time.Second)
		for {
			if staged, _ := filepath.Glob(filepath.Join(root, "a", "b", tempPrefix+"*", "*")); len(staged) > 0 {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatal("unpack never started writing")
			}
			time.Sleep(10 * time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGINT)
		err = cmd.Wait()
		stdin.Close()
		if cmd.ProcessState.ExitCode() != 130 {
			t.Errorf("exit %v, want 130", err)
		}
		assertEmptyDir(t, root)
	})
}

// pack and create write one file the same way: a temporary name in the
// target's folder, linked or renamed into place, no folder created.
func TestSingleOutputIsWholeOrAbsent(t *testing.T) {
	src := t.TempDir()
	img := testImage(t, src, "a.raw", 1<<20)
	t.Run("pack stuck at commit", func(t *testing.T) {
		root := t.TempDir()
		r := pausedRun(t, "file-staged:hang", syscall.SIGTERM, "pack", "-q", "-o", filepath.Join(root, "x.vma.zst"), img)
		if r.code != 130 {
			t.Errorf("exit %d, want 130; stderr %s", r.code, r.stderr)
		}
		assertEmptyDir(t, root)
	})
	t.Run("pack --force stuck at commit", func(t *testing.T) {
		root := t.TempDir()
		writeFile(t, filepath.Join(root, "x.vma"), []byte("precious"))
		before := snapshot(t, root)
		r := pausedRun(t, "file-staged:hang", syscall.SIGTERM, "pack", "-q", "--force", "-o", filepath.Join(root, "x.vma"), img)
		if r.code != 130 {
			t.Errorf("exit %d, want 130; stderr %s", r.code, r.stderr)
		}
		assertTree(t, "after the interrupt", snapshot(t, root), before)
	})
	t.Run("create interrupted at commit", func(t *testing.T) {
		// The command resumes after the signal; the one rename left
		// makes the output whole.
		root := t.TempDir()
		out := filepath.Join(root, "x.vma")
		r := pausedRun(t, "file-staged", syscall.SIGINT, "create", out, img)
		if r.code != 0 {
			t.Errorf("exit %d, want 0; stderr %s", r.code, r.stderr)
		}
		if got := dirNames(t, root); !slices.Equal(got, []string{"x.vma"}) {
			t.Errorf("folder holds %v", got)
		}
		runInProcess(t, nil, nil, "verify", out).mustSucceed(t)
	})
	t.Run("missing folder", func(t *testing.T) {
		root := t.TempDir()
		for _, args := range [][]string{
			{"pack", "-q", "-o", filepath.Join(root, "a", "b", "x.vma"), img},
			{"create", filepath.Join(root, "a", "b", "x.vma"), img},
		} {
			if r := runInProcess(t, nil, nil, args...); r.code != 1 {
				t.Errorf("%s: exit %d, stderr %q", args[0], r.code, r.stderr)
			}
		}
		assertEmptyDir(t, root)
	})
}

// setPause installs an in-process commit hook for one test.
func setPause(t *testing.T, f func(step string)) {
	old := testPause
	testPause = f
	t.Cleanup(func() { testPause = old })
}

// writeSet stages outputs named in order with the given contents.
func writeSet(t *testing.T, s *outputSet, names []string, data map[string]string) {
	t.Helper()
	for _, n := range names {
		f, err := s.create(n)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(data[n]); err != nil {
			t.Fatal(err)
		}
	}
}

func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, n := range dirNames(t, dir) {
		p := filepath.Join(dir, n)
		if st, err := os.Lstat(p); err == nil && st.IsDir() {
			m[n] = "<dir>"
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m[n] = string(b)
	}
	return m
}

// A file that appears at an output's name during the commit is never
// replaced: the commit fails and moves everything back.
func TestCommitUndoneWhenAnEntryAppears(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "keep"), []byte("user"))
	s, err := newOutputSet(dir, []string{"a", "b"}, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	writeSet(t, s, []string{"a", "b"}, map[string]string{"a": "new a", "b": "new b"})
	setPause(t, func(step string) {
		if step == "movein-1" {
			writeFile(t, filepath.Join(dir, "b"), []byte("intruder"))
		}
	})
	if err := s.commit(context.Background()); !errors.Is(err, errExists) {
		t.Errorf("commit: %v, want errExists", err)
	}
	want := map[string]string{"keep": "user", "b": "intruder"}
	if got := readTree(t, dir); !maps.Equal(got, want) {
		t.Errorf("after the undo: %v, want %v", got, want)
	}
}

// An undo that cannot put a replaced file back keeps it in the staging
// folder, says where, and replaces nothing.
func TestUndoKeepsWhatItCannotRestore(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a"), []byte("old a"))
	writeFile(t, filepath.Join(dir, "b"), []byte("old b"))
	var warn bytes.Buffer
	s, err := newOutputSet(dir, []string{"a", "b"}, false, true, &warn)
	if err != nil {
		t.Fatal(err)
	}
	writeSet(t, s, []string{"a", "b"}, map[string]string{"a": "new a", "b": "new b"})
	setPause(t, func(step string) {
		if step == "aside-1" { // a is aside: someone writes a new a
			writeFile(t, filepath.Join(dir, "a"), []byte("intruder"))
		}
	})
	if err := s.commit(context.Background()); !errors.Is(err, errExists) {
		t.Errorf("commit: %v, want errExists", err)
	}
	stage := filepath.Base(s.stage)
	want := map[string]string{"a": "intruder", "b": "old b", stage: "<dir>"}
	if got := readTree(t, dir); !maps.Equal(got, want) {
		t.Errorf("after the undo: %v, want %v", got, want)
	}
	if b, err := os.ReadFile(filepath.Join(s.stage, "old", "a")); string(b) != "old a" {
		t.Errorf("the replaced a is not kept: %q, %v", b, err)
	}
	if !strings.Contains(warn.String(), s.stage) {
		t.Errorf("the warning does not name the staging folder: %q", warn.String())
	}
}

// The staging folder inside an existing folder never takes a name of the
// set, even when the random name picks one.
func TestStagingNameAvoidsOutputNames(t *testing.T) {
	dir := t.TempDir()
	clash, free := tempPrefix+"clash", tempPrefix+"free"
	names := []string{clash, "qemu-server.conf"}
	old := tempName
	picks := []string{clash, clash, free}
	tempName = func() string {
		n := picks[0]
		picks = picks[1:]
		return n
	}
	t.Cleanup(func() { tempName = old })
	s, err := newOutputSet(dir, names, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.stage != filepath.Join(dir, free) {
		t.Fatalf("staging folder %s, want %s", s.stage, free)
	}
	writeSet(t, s, names, map[string]string{clash: "config", "qemu-server.conf": "memory: 1\n"})
	if err := s.commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{clash: "config", "qemu-server.conf": "memory: 1\n"}
	if got := readTree(t, dir); !maps.Equal(got, want) {
		t.Errorf("committed %v, want %v", got, want)
	}
}
