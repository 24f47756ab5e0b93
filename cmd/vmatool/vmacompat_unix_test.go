//go:build unix

package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// restoreRun is what qmrestore saw of one "vmatool extract -v -r".
type restoreRun struct {
	stdout, stderr string
	code           int
	conf           []byte           // TMPDIR/qemu-server.conf, read on the CTIME: line
	devs           map[string]int64 // from the DEV: lines
	tmpdir         string
}

// devLine is qemu-server's pattern for DEV: lines (restore_vma_archive).
var devLine = regexp.MustCompile(`^DEV:\sdev_id=(\d+)\ssize:\s(\d+)\sdevname:\s(\S+)$`)

// qmrestore plays qemu-server's side of restore_vma_archive: it makes the
// FIFO, starts "vmatool extract -v -r FIFO ARCHIVE TMPDIR" with archive
// ("-" reads stdin), opens the FIFO for writing as soon as the command runs
// (qemu-server's afterfork), and reads the command's output line by line,
// noting DEV: lines. On the CTIME: line it reads TMPDIR/qemu-server.conf,
// which must be there by then, writes mapLine(devname, size) for each disk
// into the FIFO, then "done", and closes it.
func qmrestore(t *testing.T, archive string, stdin io.Reader, mapLine func(devname string, size int64) string) restoreRun {
	t.Helper()
	return qmrestoreThen(t, archive, stdin, mapLine, nil)
}

// qmrestoreThen is qmrestore, calling then with the running command once
// the map is written.
func qmrestoreThen(t *testing.T, archive string, stdin io.Reader, mapLine func(devname string, size int64) string, then func(*exec.Cmd)) restoreRun {
	t.Helper()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "vzdumptmp.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	run := restoreRun{devs: map[string]int64{}, tmpdir: filepath.Join(dir, "vzdumptmp")}
	cmd := exec.Command(vmatoolBin, "extract", "-v", "-r", fifo, archive, run.tmpdir)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	cmd.Stdin = stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	opened := make(chan *os.File, 1)
	go func() {
		// Blocks until vmatool opens the FIFO for reading.
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			f = nil
		}
		opened <- f
	}()
	consumed := false
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		if m := devLine.FindStringSubmatch(line); m != nil {
			size, _ := strconv.ParseInt(m[2], 10, 64)
			run.devs[m[3]] = size
		}
		if !strings.HasPrefix(line, "CTIME: ") {
			continue
		}
		if run.conf, err = os.ReadFile(filepath.Join(run.tmpdir, "qemu-server.conf")); err != nil {
			t.Errorf("unable to read qemu-server.conf on the CTIME: line: %v", err)
		}
		var fh *os.File
		consumed = true
		select {
		case fh = <-opened:
		case <-time.After(20 * time.Second):
			t.Fatal("vmatool did not open the FIFO")
		}
		if fh == nil {
			t.Fatal("opening the FIFO for writing failed")
		}
		for name, size := range run.devs {
			if l := mapLine(name, size); l != "" {
				fmt.Fprintln(fh, l)
			}
		}
		fmt.Fprintln(fh, "done")
		fh.Close()
		if then != nil {
			then(cmd)
		}
	}
	cmd.Wait()
	// If vmatool ended without opening the FIFO, free the writer.
	if !consumed {
		if r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			if f := <-opened; f != nil {
				f.Close()
			}
			r.Close()
		}
	}
	run.stdout, run.stderr, run.code = out.String(), stderr.String(), cmd.ProcessState.ExitCode()
	return run
}

// prefixSHA is the sha256 of the first n bytes of the file at path.
func prefixSHA(t *testing.T, path string, n int64) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, f, n); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestExtractRestoreProtocol restores every vector the way qmrestore does,
// from a file and from standard input, into volumes that read as zeros
// (write zeros 0) and into larger ones full of old data (write zeros 1),
// and expects vma's output byte for byte and each disk's sha256.
func TestExtractRestoreProtocol(t *testing.T) {
	for _, v := range vectors(t) {
		name := strings.TrimSuffix(v.File, ".vma")
		want := verboseCapture(t, name, "extract-v-r")
		if v.Expect != "ok" || want == "" || !strings.HasSuffix(v.File, ".vma") {
			continue
		}
		for _, input := range []string{"file", "stdin"} {
			for _, zeros := range []int{0, 1} {
				t.Run(fmt.Sprintf("%s/%s/zeros=%d", name, input, zeros), func(t *testing.T) {
					archive := filepath.Join(vectorDir, v.File)
					var stdin io.Reader
					if input == "stdin" {
						f, err := os.Open(archive)
						if err != nil {
							t.Fatal(err)
						}
						defer f.Close()
						archive, stdin = "-", f
					}
					volumes := t.TempDir()
					paths := map[string]string{}
					// Storages without sparseinit hand out volumes that may
					// hold old data, and round sizes up (here by 1 MiB).
					const extra = 1 << 20
					run := qmrestore(t, archive, stdin, func(dev string, size int64) string {
						p := filepath.Join(volumes, "vm-100-"+dev+".raw")
						if zeros == 0 {
							writeFile(t, p, nil)
							if err := os.Truncate(p, size); err != nil {
								t.Fatal(err)
							}
						} else {
							writeFile(t, p, bytes.Repeat([]byte{0xA5}, int(size+extra)))
						}
						paths[dev] = p
						return fmt.Sprintf("format=raw:%d:%s=%s", zeros, dev, p)
					})
					if got := transcript(run.stdout, run.code); normalizeVerbose(got) != normalizeVerbose(want) {
						t.Errorf("output:\n%s\nvma printed:\n%s", got, want)
					}
					if run.stderr != "" {
						t.Errorf("stderr %q", run.stderr)
					}
					for _, c := range v.Configs {
						if got := fileSHA(t, filepath.Join(run.tmpdir, c.Name)); got != c.SHA256 {
							t.Errorf("config %s: sha256 %s, want %s", c.Name, got, c.SHA256)
						}
					}
					if len(run.devs) != len(v.Devices) {
						t.Errorf("DEV: lines for %v, want %d disks", run.devs, len(v.Devices))
					}
					for _, d := range v.Devices {
						if run.devs[d.Name] != d.Size {
							t.Errorf("DEV: %s has size %d, want %d", d.Name, run.devs[d.Name], d.Size)
						}
						if got := prefixSHA(t, paths[d.Name], d.Size); got != d.SHA256 {
							t.Errorf("%s: sha256 %s, want %s", d.Name, got, d.SHA256)
						}
						if zeros == 1 {
							b, _ := os.ReadFile(paths[d.Name])
							if tail := b[d.Size:]; !bytes.Equal(tail, bytes.Repeat([]byte{0xA5}, len(tail))) {
								t.Errorf("%s: the volume's bytes past the disk were written", d.Name)
							}
						}
					}
				})
			}
		}
	}
}

// A target that is not a file or block device, such as Ceph's rbd: as
// qemu-server passes it, is refused with a clear error before anything is
// read, and what vmatool made in TMPDIR goes.
func TestExtractRestoreRefusesRBD(t *testing.T) {
	target := "rbd:rbd/vm-100-disk-0:conf=/etc/pve/ceph.conf:id=admin:keyring=/etc/pve/priv/ceph/rbd.keyring"
	run := qmrestore(t, filepath.Join(vectorDir, "v01-single.vma"), nil, func(dev string, _ int64) string {
		return "throttling.bps=1048576:throttling.group=rbd:format=raw:1:" + dev + "=" + target
	})
	want := "vmatool extract: " + filepath.Dir(run.tmpdir) + "/vzdumptmp.fifo: drive-scsi0: target \"" + target + "\" is for QEMU's rbd block driver; vmatool writes to files and block devices only\n"
	if run.code != 1 || run.stderr != want {
		t.Errorf("exit %d, stderr %q; want 1 and %q", run.code, run.stderr, want)
	}
	if !strings.HasSuffix(run.stdout, "CTIME: Sat Nov 21 21:13:04 2026\n") {
		t.Errorf("stdout after the refusal: %q", run.stdout)
	}
	assertGone(t, run.tmpdir)
}

// skip= lines and -d leave disks out; vma's figures still count them.
func TestExtractRestoreSkip(t *testing.T) {
	want := verboseCapture(t, "v02-two-disks", "extract-v-r")
	volumes := t.TempDir()
	p := filepath.Join(volumes, "scsi0.raw")
	writeFile(t, p, make([]byte, 1048576))
	run := qmrestore(t, filepath.Join(vectorDir, "v02-two-disks.vma"), nil, func(dev string, _ int64) string {
		if dev == "drive-efidisk0" {
			return "skip=drive-efidisk0"
		}
		return "0:" + dev + "=" + p
	})
	if got := transcript(run.stdout, run.code); normalizeVerbose(got) != normalizeVerbose(want) {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
	if got := fileSHA(t, p); got != "295f2adc0c764afe5ada5c9069f7126e815781b7bf6c575e60c84106a0032211" {
		t.Errorf("drive-scsi0: sha256 %s", got)
	}
	if got := dirNames(t, volumes); len(got) != 1 {
		t.Errorf("volumes %v", got)
	}
}

// The VM state goes to TMPDIR/vmstate.bin; its VMSTATE: line is not one
// qmrestore maps.
func TestExtractRestoreVMState(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, dir, "a.raw", 256<<10)
	state := testImage(t, dir, "state.bin", 200<<10)
	conf := writeFile(t, filepath.Join(dir, "qemu-server.conf"), []byte("memory: 512\n"))
	archive := filepath.Join(dir, "s.vma")
	runInProcess(t, nil, nil, "create", archive, "-c", conf, "-d", "format=raw:drive-scsi0="+img, "-d", "format=raw:vmstate="+state).mustSucceed(t)
	vol := writeFile(t, filepath.Join(dir, "vol.raw"), make([]byte, 256<<10))
	run := qmrestore(t, archive, nil, func(dev string, _ int64) string { return "format=raw:1:" + dev + "=" + vol })
	if run.code != 0 || len(run.devs) != 1 || !strings.Contains(run.stdout, "\nVMSTATE: dev_id=2 memory: 204800\n") {
		t.Fatalf("exit %d, devs %v, stdout %q, stderr %q", run.code, run.devs, run.stdout, run.stderr)
	}
	if fileSHA(t, vol) != fileSHA(t, img) || fileSHA(t, filepath.Join(run.tmpdir, "vmstate.bin")) != fileSHA(t, state) {
		t.Error("disk or VM state restored wrong")
	}
	// 4 disk clusters count; the VM state's 4 are read but not counted,
	// as in vma's extract: 8 of 4.
	if !strings.Contains(run.stdout, "progress 200% (read 524288 bytes, duration ") {
		t.Errorf("progress lines:\n%s", run.stdout)
	}
}

// An interrupted restore removes what it made in TMPDIR, and exits 130.
func TestExtractRestoreInterrupted(t *testing.T) {
	dir := t.TempDir()
	vol := writeFile(t, filepath.Join(dir, "vol.raw"), make([]byte, 1056768))
	// At 64 KiB/s the restore takes 16 s: time to interrupt it.
	run := qmrestoreThen(t, filepath.Join(vectorDir, "v01-single.vma"), nil, func(dev string, _ int64) string {
		return "throttling.bps=65536:format=raw:1:" + dev + "=" + vol
	}, func(cmd *exec.Cmd) {
		time.Sleep(300 * time.Millisecond)
		cmd.Process.Signal(syscall.SIGINT)
	})
	if run.code != 130 || run.stderr != "vmatool extract: interrupted\n" {
		t.Errorf("exit %d, stderr %q; want 130 and one line", run.code, run.stderr)
	}
	assertGone(t, run.tmpdir)
}

// Targets in one throttling group share its limit, the last one given.
func TestExtractRestoreThrottle(t *testing.T) {
	dir := t.TempDir()
	// Every other 4 KiB block holds data: all writes are one block, so
	// the rate is the limit's, not the first write's.
	b := make([]byte, 1<<20)
	for i := 0; i < len(b); i += 8192 {
		b[i] = 1
	}
	img := writeFile(t, filepath.Join(dir, "a.raw"), b)
	conf := writeFile(t, filepath.Join(dir, "qemu-server.conf"), []byte("memory: 512\n"))
	archive := filepath.Join(dir, "t.vma")
	runInProcess(t, nil, nil, "create", archive, "-c", conf, "-d", "format=raw:drive-scsi0="+img, "-d", "format=raw:drive-scsi1="+img).mustSucceed(t)
	const bps = 2 << 20
	start := time.Now()
	run := qmrestore(t, archive, nil, func(dev string, size int64) string {
		p := filepath.Join(dir, dev+".raw")
		writeFile(t, p, make([]byte, size))
		// The group's limit is the last given, in disk order; drive-scsi0
		// asks for 1000 times more.
		if dev == "drive-scsi0" {
			return fmt.Sprintf("throttling.bps=%d:throttling.group=g:format=raw:1:%s=%s", 1000*bps, dev, p)
		}
		return fmt.Sprintf("throttling.group=g:throttling.bps=%d:format=raw:1:%s=%s", bps, dev, p)
	})
	took := time.Since(start)
	if run.code != 0 {
		t.Fatalf("exit %d: %s", run.code, run.stderr)
	}
	// 2 MiB, zeros included, at 2 MiB/s.
	if took < 800*time.Millisecond {
		t.Errorf("took %v; 2 MiB at %d B/s takes about a second", took, bps)
	}
	for _, dev := range []string{"drive-scsi0", "drive-scsi1"} {
		if fileSHA(t, filepath.Join(dir, dev+".raw")) != fileSHA(t, img) {
			t.Errorf("%s restored wrong", dev)
		}
	}
}

// create -v and its positional form print what vma create prints. Run as
// "vma" (a link, as one would install it for Proxmox's scripts), the
// warning names "vma", as vma's does.
func TestCreateVerboseMatchesVMA(t *testing.T) {
	for _, v := range vectors(t) {
		name := strings.TrimSuffix(v.File, ".vma")
		want := verboseCapture(t, name, "create-v")
		if want == "" || !strings.HasSuffix(v.File, ".vma") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			vmaBin := filepath.Join(dir, "vma")
			if err := os.Symlink(vmatoolBin, vmaBin); err != nil {
				t.Fatal(err)
			}
			runInProcess(t, nil, nil, "unpack", "-q", filepath.Join(vectorDir, v.File), filepath.Join(dir, "in")).mustSucceed(t)
			run := func(args ...string) string {
				cmd := exec.Command(vmaBin, args...)
				cmd.Dir, cmd.Env = dir, append(os.Environ(), "TZ=UTC")
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				cmd.Run()
				if stdout.Len() > 0 {
					t.Errorf("vma %v: stdout %q", args, stdout.String())
				}
				return transcript(stderr.String(), cmd.ProcessState.ExitCode())
			}
			args := []string{"create", "-v", "out.vma"}
			for _, c := range v.Configs {
				args = append(args, "-c", "in/"+c.Name)
			}
			for _, d := range v.Devices {
				args = append(args, "-d", "format=raw:"+d.Name+"=in/disk-"+d.Name+".raw")
			}
			compareCreate(t, run(args...), want, len(v.Devices) == 1)

			want = verboseCapture(t, name, "create-v-positional")
			d := v.Devices[0]
			got := run("create", "-v", "positional.vma", "-c", "in/qemu-server.conf", d.Name+"=in/disk-"+d.Name+".raw")
			compareCreate(t, got, want, true)
			// This capture has a line for every cluster, as vmatool
			// prints them: the whole output is equal.
			if name == "v01-single" && got != want {
				t.Errorf("create -v, positional:\n%s\nvma printed:\n%s", got, want)
			}
		})
	}
}

// compareCreate compares create -v output with vma's. vma samples its
// counters from an event loop, so which progress lines appear between the
// first and the last depends on timing (two captures of one command
// differ), and with several disks it reads them interleaved in no fixed
// order. Every other line must be equal; with one disk, where the states
// follow one fixed sequence, every line vma printed must also be one of
// vmatool's, in order.
func compareCreate(t *testing.T, got, want string, oneDisk bool) {
	t.Helper()
	split := func(s string) (head, progress, tail []string) {
		for _, l := range strings.SplitAfter(s, "\n") {
			switch {
			case strings.HasPrefix(l, "progress "):
				progress = append(progress, l)
			case len(progress) == 0:
				head = append(head, l)
			default:
				tail = append(tail, l)
			}
		}
		return
	}
	gh, gp, gt := split(got)
	wh, wp, wt := split(want)
	same := strings.Join(gh, "") == strings.Join(wh, "") && strings.Join(gt, "") == strings.Join(wt, "") &&
		len(gp) > 0 && len(wp) > 0 && gp[0] == wp[0] && gp[len(gp)-1] == wp[len(wp)-1]
	if same && oneDisk {
		i := 0
		for _, l := range gp {
			if i < len(wp) && l == wp[i] {
				i++
			}
		}
		same = i == len(wp)
	}
	if !same {
		t.Errorf("create -v printed:\n%s\nvma printed:\n%s", got, want)
	}
}
