//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hangLimit is how long a run may take before the test calls it a hang.
const hangLimit = 20 * time.Second

// rssRunnerEnv starts the test binary as a runner of one vmatool process
// (see init): it passes the streams and exit status through and writes the
// child's peak RSS to file descriptor 3.
//
// The runner is there because Go starts children with vfork: until exec,
// a child shares its parent's memory, and Linux carries the high-water
// mark of that memory into the child's ru_maxrss. A vmatool started by the
// test process would report at least the test process's own peak, which
// earlier tests can push past 64 MiB; started by the fresh runner, it
// reports at least the runner's few MiB.
const rssRunnerEnv = "VMATOOL_TEST_RSS_RUNNER"

func init() {
	if os.Getenv(rssRunnerEnv) != "1" {
		return
	}
	os.Unsetenv(rssRunnerEnv)
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		fmt.Fprintln(os.Stderr, "rss runner:", err)
		os.Exit(125)
	}
	fmt.Fprintf(os.NewFile(3, "rss"), "%d", peakRSS(cmd.ProcessState))
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		os.Exit(128 + int(ws.Signal()))
	}
	os.Exit(cmd.ProcessState.ExitCode())
}

// vmatoolWithin runs the binary like vmatool, through the RSS runner, and
// kills it and fails the test when it has not finished within hangLimit.
func vmatoolWithin(t *testing.T, args ...string) result {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	rssR, rssW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer rssR.Close()
	ctx, cancel := context.WithTimeout(context.Background(), hangLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, append([]string{vmatoolBin}, args...)...)
	cmd.Env = append(os.Environ(), "TZ=UTC", "SOURCE_DATE_EPOCH=", "SSH_AUTH_SOCK=", "PVE_TOKEN=", rssRunnerEnv+"=1")
	cmd.ExtraFiles = []*os.File{rssW}
	// Kill the runner and vmatool with it: a vmatool blocked in open(2)
	// would outlive its runner.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	rssW.Close()
	if ctx.Err() != nil {
		t.Fatalf("vmatool %v hung: killed after %v (stderr so far: %q)", args, hangLimit, errb.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running vmatool %v: %v", args, err)
	}
	if cmd.ProcessState.ExitCode() == 125 {
		t.Fatalf("running vmatool %v: %s", args, errb.String())
	}
	rss, err := io.ReadAll(rssR)
	if err != nil {
		t.Fatal(err)
	}
	maxRSS, err := strconv.ParseInt(string(rss), 10, 64)
	if err != nil {
		t.Fatalf("no peak RSS from the runner: %q", rss)
	}
	return result{out.String(), errb.String(), cmd.ProcessState.ExitCode(), maxRSS}
}

// craftedQcow2 describes a qcow2 image made of headers alone: every
// cluster unallocated, the L1 table a hole of the file.
type craftedQcow2 struct {
	clusterBits   uint32
	size          uint64 // virtual size
	l1Size        uint32 // entries
	backing       string // backing file name as stored; "" for none
	backingFormat string // "" for no backing format extension
	// fragmented points every L1 entry at one L2 table (in cluster 3)
	// whose clusters alternate between unallocated and zero.
	fragmented bool
}

// maxL1 is the largest L1 table qemu and vmatool accept: 32 MiB.
const maxL1 = 32 << 20 / 8

// hugeQcow2 claims the largest virtual size a maximal L1 table maps with
// 1<<clusterBits clusters: 128 GiB with 512-byte clusters, 2 PiB with
// 64 KiB ones.
func hugeQcow2(clusterBits uint32, backing, format string) craftedQcow2 {
	return craftedQcow2{clusterBits: clusterBits, size: maxL1 << (2*clusterBits - 3), l1Size: maxL1, backing: backing, backingFormat: format}
}

// write writes the image to path: a version 3 header, the backing format
// extension and backing name in cluster 0, the refcount table in cluster 1
// and the L1 table from cluster 2, which the file covers only as a hole.
// The file takes a few KiB of disk whatever it claims.
func (c craftedQcow2) write(t *testing.T, path string) string {
	t.Helper()
	be := binary.BigEndian
	cluster := uint64(1) << c.clusterBits
	h := make([]byte, min(cluster, 4096))
	copy(h, "QFI\xfb")
	be.PutUint32(h[4:], 3)
	be.PutUint32(h[20:], c.clusterBits)
	be.PutUint64(h[24:], c.size)
	be.PutUint32(h[36:], c.l1Size)
	l1Off := 2 * cluster
	be.PutUint64(h[40:], l1Off)
	be.PutUint64(h[48:], cluster) // refcount table (readers never look at it)
	be.PutUint32(h[56:], 1)
	be.PutUint32(h[96:], 4)    // refcount_order
	be.PutUint32(h[100:], 104) // header_length
	off := 104
	if c.backingFormat != "" {
		be.PutUint32(h[off:], 0xe2792aca)
		be.PutUint32(h[off+4:], uint32(len(c.backingFormat)))
		copy(h[off+8:], c.backingFormat)
		off += 8 + (len(c.backingFormat)+7)&^7
	}
	off += 8 // the end-of-extensions marker: zeros
	end := off
	if c.backing != "" {
		if off+len(c.backing) > len(h) {
			t.Fatalf("backing name %q does not fit in cluster 0", c.backing)
		}
		be.PutUint64(h[8:], uint64(off))
		be.PutUint32(h[16:], uint32(len(c.backing)))
		end += copy(h[off:], c.backing)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(h[:end]); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(l1Off + uint64(c.l1Size)*8)); err != nil {
		t.Fatal(err)
	}
	if c.fragmented {
		l2Off := 3 * cluster
		l1 := make([]byte, c.l1Size*8)
		for i := range c.l1Size {
			be.PutUint64(l1[i*8:], l2Off)
		}
		l2 := make([]byte, cluster)
		for i := 1; i < len(l2)/8; i += 2 {
			be.PutUint64(l2[i*8:], 1) // ZERO_PLAIN
		}
		if _, err := f.WriteAt(l1, int64(l1Off)); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(l2, int64(l2Off)); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// hugeChain writes top.qcow2 -> b01.qcow2 -> ... -> bNN.qcow2 in dir, depth
// backing files below top, each claiming the largest size and L1 table.
func hugeChain(t *testing.T, dir string, clusterBits uint32, depth int) string {
	t.Helper()
	name := func(i int) string {
		if i == 0 {
			return "top.qcow2"
		}
		return fmt.Sprintf("b%02d.qcow2", i)
	}
	for i := 0; i <= depth; i++ {
		backing, format := "", ""
		if i < depth {
			backing, format = name(i+1), "qcow2"
		}
		hugeQcow2(clusterBits, backing, format).write(t, filepath.Join(dir, name(i)))
	}
	return filepath.Join(dir, name(0))
}

// chainDepth is the deepest chain vmatool follows: qcow2.DefaultMaxBackingDepth
// backing files below the image.
const chainDepth = 16

// TestHardeningChainMemory opens a chain of 17 qcow2 files of a few KiB,
// each claiming the largest L1 table (32 MiB) and the virtual size it maps.
// Holding each L1 table whole took 555 MiB; info, pack and deploy must stay
// within the 64 MiB bound.
func TestHardeningChainMemory(t *testing.T) {
	t.Run("info 2 PiB chain", func(t *testing.T) {
		top := hugeChain(t, t.TempDir(), 16, chainDepth)
		r := vmatoolWithin(t, "info", "--json", "--backing-chain", top)
		t.Logf("info --backing-chain of a chain of %d 2 PiB images: peak RSS %.1f MiB", chainDepth+1, float64(r.maxRSS)/(1<<20))
		r.mustSucceed(t).assertRSS(t)
		var doc infoDoc
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
			t.Fatalf("%v: %s", err, r.stdout)
		}
		if doc.Image == nil || len(doc.Image.Backing) != chainDepth || doc.Image.VirtualSize != 1<<51 {
			t.Fatalf("info: %+v", doc.Image)
		}
		if lines := strings.Count(r.stderr, "\n"); lines != 1 || !strings.Contains(r.stderr, "reads backing chain: "+top+" -> ") {
			t.Errorf("stderr %q: want one line showing the chain", r.stderr)
		}
	})
	// A VMA device holds at most 2^32 clusters (256 TiB): pack and
	// deploy take the 128 GiB chain of 512-byte clusters.
	top := hugeChain(t, t.TempDir(), 9, chainDepth)
	t.Run("pack 128 GiB chain", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "x.vma.zst")
		r := vmatoolWithin(t, "pack", "-q", "-o", out, top)
		t.Logf("pack of a chain of %d 128 GiB images: peak RSS %.1f MiB", chainDepth+1, float64(r.maxRSS)/(1<<20))
		r.mustSucceed(t).assertRSS(t)
		list := runInProcess(t, nil, nil, "list", out).mustSucceed(t).stdout
		if !strings.Contains(list, fmt.Sprintf("size: %d devname: drive-scsi0", int64(128)<<30)) {
			t.Errorf("list: %s", list)
		}
	})
	t.Run("deploy 128 GiB chain", func(t *testing.T) {
		r := vmatoolWithin(t, "deploy", "-q", "--dry-run", "--host", "root@pve.invalid", "--vmid", "100", top)
		t.Logf("deploy --dry-run: peak RSS %.1f MiB", float64(r.maxRSS)/(1<<20))
		r.mustSucceed(t).assertRSS(t)
		n := newNode(t)
		r = vmatoolWithin(t, n.args("--vmid", "170", "--stream", top)...)
		t.Logf("deploy --stream: peak RSS %.1f MiB", float64(r.maxRSS)/(1<<20))
		r.mustSucceed(t).assertRSS(t)
		if st, err := os.Stat(filepath.Join(n.rec, "restored-170.vma")); err != nil || st.Size() == 0 {
			t.Errorf("qmrestore received no archive: %v", err)
		}
	})
}

// TestHardeningInfoFragmented describes an image of 256 GiB whose 4 Mi
// clusters alternate between unallocated and zero: info's summary of how
// the image stores the disk must not hold the map in memory.
func TestHardeningInfoFragmented(t *testing.T) {
	const l1Entries = 512 // of 512 MiB each
	img := craftedQcow2{clusterBits: 16, size: l1Entries << 29, l1Size: l1Entries, fragmented: true}.
		write(t, filepath.Join(t.TempDir(), "fragmented.qcow2"))
	r := vmatoolWithin(t, "info", "--json", img)
	t.Logf("info of %d alternating clusters: peak RSS %.1f MiB", l1Entries<<13, float64(r.maxRSS)/(1<<20))
	r.mustSucceed(t).assertRSS(t)
	var doc infoDoc
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatal(err)
	}
	if q := doc.Image.Qcow2; q == nil || q.Zero != l1Entries<<28 || q.Unallocated != l1Entries<<28 {
		t.Errorf("stored as %+v", q)
	}
}

// TestHardeningBackingNotRegular gives images whose backing file, named
// by the image at the top or by one further down, is a FIFO, a character
// device, a directory or a socket. Opening a FIFO used to block forever.
// info (which opens only the image unless --backing-chain), pack and
// deploy must refuse each at once with one line naming the image whose
// header names the file, and where.
func TestHardeningBackingNotRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	folder := filepath.Join(dir, "folder")
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	for _, tc := range []struct {
		name, backing, what string
	}{
		{"fifo", "fifo", "named pipe"},
		{"device", "/dev/null", "device"},
		{"directory", "folder", "directory"},
		{"socket", "sock", "socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			top := craftedQcow2{clusterBits: 16, size: 1 << 20, l1Size: 1, backing: tc.backing, backingFormat: "raw"}.
				write(t, filepath.Join(dir, tc.name+".qcow2"))
			// The same file two levels down: the error names the image
			// that names it.
			mid := craftedQcow2{clusterBits: 16, size: 1 << 20, l1Size: 1, backing: tc.backing, backingFormat: "raw"}.
				write(t, filepath.Join(dir, tc.name+"-mid.qcow2"))
			deep := craftedQcow2{clusterBits: 16, size: 1 << 20, l1Size: 1, backing: tc.name + "-mid.qcow2", backingFormat: "qcow2"}.
				write(t, filepath.Join(dir, tc.name+"-deep.qcow2"))
			for _, img := range []struct{ path, namer string }{{top, top}, {deep, mid}} {
				outDir := t.TempDir()
				for _, args := range [][]string{
					{"info", "--backing-chain", img.path},
					{"pack", "-o", filepath.Join(outDir, "x.vma"), img.path},
					{"deploy", "--dry-run", "--host", "root@pve.invalid", "--vmid", "100", img.path},
				} {
					r := vmatoolWithin(t, args...)
					assertOneLine(t, r, img.namer, fmt.Sprintf("%q", tc.backing), "backing_file_offset", tc.what, "not a regular file")
					r.assertRSS(t)
				}
				assertEmptyDir(t, outDir)
			}
			// Without --backing-chain info opens the image alone.
			r := vmatoolWithin(t, "info", "--json", top).mustSucceed(t)
			r.assertRSS(t)
			var doc infoDoc
			if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
				t.Fatal(err)
			}
			if doc.Image.BackingFile != tc.backing || doc.Image.BackingFormat != "raw" || len(doc.Image.Backing) != 0 {
				t.Errorf("info: backing file %q (%s), chain %+v", doc.Image.BackingFile, doc.Image.BackingFormat, doc.Image.Backing)
			}
			if r.stderr != "" {
				t.Errorf("info without --backing-chain said %q", r.stderr)
			}
		})
	}
}

// TestHardeningBackingOutside follows the policy for a backing name that
// leads out of the image's directory (../../etc/passwd style) or is
// absolute: like qemu, vmatool follows it when it is a regular file, and
// says so on stderr before reading; --no-backing refuses it; info opens it
// only with --backing-chain.
func TestHardeningBackingOutside(t *testing.T) {
	root := t.TempDir()
	images := filepath.Join(root, "a", "b")
	if err := os.MkdirAll(images, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := bytes.Repeat([]byte("secret!\n"), 128<<10)
	secretPath := writeFile(t, filepath.Join(root, "secret.raw"), secret)

	for _, tc := range []struct{ name, backing string }{
		{"relative", "../../secret.raw"},
		{"absolute", secretPath},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := craftedQcow2{clusterBits: 16, size: uint64(len(secret)), l1Size: 1, backing: tc.backing, backingFormat: "raw"}.
				write(t, filepath.Join(images, tc.name+".qcow2"))
			resolved := tc.backing
			if !filepath.IsAbs(resolved) {
				resolved = filepath.Join(images, tc.backing)
			}

			// --no-backing: refused, nothing written, nothing read.
			outDir := t.TempDir()
			for _, args := range [][]string{
				{"pack", "--no-backing", "-o", filepath.Join(outDir, "x.vma"), img},
				{"info", "--no-backing", img},
				{"info", "--no-backing", "--backing-chain", img},
				{"deploy", "--no-backing", "--dry-run", "--host", "root@pve.invalid", "--vmid", "100", img},
			} {
				r := vmatoolWithin(t, args...)
				assertOneLine(t, r, img, fmt.Sprintf("%q", tc.backing), "backing_file_offset", "--no-backing")
				r.assertRSS(t)
			}
			assertEmptyDir(t, outDir)

			// info describes the image alone, naming its backing file.
			r := vmatoolWithin(t, "info", img).mustSucceed(t)
			if !strings.Contains(r.stdout, tc.backing) || !strings.Contains(r.stdout, "partitions: "+partitionsNeedBacking) || r.stderr != "" {
				t.Errorf("info:\n%s", r.stdout)
			}

			// pack follows it, and says so first. (A name qmrestore takes:
			// any other gets a warning too.)
			out := filepath.Join(outDir, "vzdump-qemu-100-x.vma")
			r = vmatoolWithin(t, "pack", "-o", out, img).mustSucceed(t)
			r.assertRSS(t)
			want := fmt.Sprintf("vmatool: %s reads backing chain: %s -> %s (raw)\n", img, img, resolved)
			if r.stderr != want {
				t.Errorf("stderr %q, want %q", r.stderr, want)
			}
			u := filepath.Join(t.TempDir(), "u")
			runInProcess(t, nil, nil, "unpack", "-q", out, u).mustSucceed(t)
			if fileSHA(t, filepath.Join(u, "disk-drive-scsi0.raw")) != fileSHA(t, secretPath) {
				t.Error("the packed disk is not the backing file's content")
			}
			// --quiet keeps stderr empty.
			r = vmatoolWithin(t, "pack", "-q", "-f", "-o", out, img).mustSucceed(t)
			if r.stderr != "" {
				t.Errorf("pack -q said %q", r.stderr)
			}
			r = vmatoolWithin(t, "deploy", "--dry-run", "--host", "root@pve.invalid", "--vmid", "100", img).mustSucceed(t)
			if r.stderr != want {
				t.Errorf("deploy stderr %q, want %q", r.stderr, want)
			}
		})
	}
}

// TestHardeningBackingDepth refuses a chain one image deeper than the
// limit, naming the image at the bottom and its header field.
func TestHardeningBackingDepth(t *testing.T) {
	dir := t.TempDir()
	top := hugeChain(t, dir, 9, chainDepth+1)
	last := filepath.Join(dir, fmt.Sprintf("b%02d.qcow2", chainDepth))
	outDir := t.TempDir()
	r := vmatoolWithin(t, "pack", "-o", filepath.Join(outDir, "x.vma"), top)
	assertOneLine(t, r, last, fmt.Sprintf("%q", fmt.Sprintf("b%02d.qcow2", chainDepth+1)), "backing_file_offset", "too deep")
	r.assertRSS(t)
	assertEmptyDir(t, outDir)
}
