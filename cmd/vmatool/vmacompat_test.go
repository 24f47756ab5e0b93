package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Captures of what Proxmox's own vma prints with -v (see their README).
const verboseDir = vectorDir + "/verbose"

// verboseCapture returns the capture of kind for vector name (e.g.
// "v01-single", "verify-v"), or "" if there is none.
func verboseCapture(t *testing.T, name, kind string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(verboseDir, name+"."+kind+".txt"))
	if os.IsNotExist(err) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var (
	durationRe = regexp.MustCompile(`duration \d+ sec\)`)
	devinfoRe  = regexp.MustCompile(`(?m)^DEVINFO \S+ (\d+)$`)
)

// normalizeVerbose replaces what two runs of the same tool print
// differently by nature: seconds of wall-clock time, and the temporary
// file a DEVINFO line names.
func normalizeVerbose(s string) string {
	s = durationRe.ReplaceAllString(s, "duration N sec)")
	return devinfoRe.ReplaceAllString(s, "DEVINFO <temporary file> $1")
}

// transcript is a run's output as the captures record it.
func transcript(out string, code int) string { return fmt.Sprintf("%sexit status %d\n", out, code) }

// verboseVectors are the vectors that have captures.
var verboseVectors = []string{"v01-single", "v02-two-disks", "v03-all-zero", "v04-diskless", "v05-fixed-uuid", "v06-out-of-order"}

// verify -v and extract -v print what vma prints, byte for byte.
func TestVerboseMatchesVMA(t *testing.T) {
	for _, name := range verboseVectors {
		t.Run(name, func(t *testing.T) {
			archive := filepath.Join(vectorDir, name+".vma")
			for _, kind := range []string{"verify-v", "extract-v"} {
				want := verboseCapture(t, name, kind)
				if want == "" {
					t.Fatalf("no %s capture", kind)
				}
				args := []string{"verify", "-v", archive}
				if kind == "extract-v" {
					args = []string{"extract", "-v", archive, filepath.Join(t.TempDir(), "x")}
				}
				r := runInProcess(t, nil, nil, args...)
				if got := transcript(r.stdout, r.code); normalizeVerbose(got) != normalizeVerbose(want) {
					t.Errorf("%s:\n%s\nvma printed:\n%s", kind, got, want)
				}
				if r.stderr != "" {
					t.Errorf("%s: stderr %q", kind, r.stderr)
				}
			}
		})
	}
	// A compressed archive gives the same lines: they count the archive's
	// clusters, not the bytes of the file.
	r := runInProcess(t, nil, nil, "verify", "-v", filepath.Join(vectorDir, "v01-single.vma.zst"))
	if got, want := transcript(r.stdout, r.code), verboseCapture(t, "v01-single", "verify-v"); normalizeVerbose(got) != normalizeVerbose(want) {
		t.Errorf("verify -v of the zstd archive:\n%s", got)
	}
	if r := runInProcess(t, nil, nil, "verify", "-v", "--json", filepath.Join(vectorDir, "v01-single.vma")); r.code != 2 {
		t.Errorf("verify -v --json: exit %d, want 2", r.code)
	}
}

// With every disk under 64 KiB, vma's percentage divides by zero and vma
// dies of SIGFPE; vmatool prints no progress line and the summary.
func TestVerboseTinyDisks(t *testing.T) {
	archive := writeFile(t, filepath.Join(t.TempDir(), "tiny.vma"),
		vmaSpec{configs: []string{"qemu-server.conf"}, devices: []vmaDev{{"drive-scsi0", 4096}, {"drive-scsi1", 8192}}}.bytes())
	r := runInProcess(t, nil, nil, "verify", "-v", archive).mustSucceed(t)
	// Two clusters read; each stores its first block, the rest of each disk
	// (up to its end) is sparse: 0 + 4096 bytes, all in clusters with data.
	want := "total bytes read 131072, sparse bytes 4096 (3.12%)\nspace reduction due to 4K zero blocks 3.23%\n"
	if !strings.HasSuffix(r.stdout, "CTIME: Tue Nov 14 22:13:20 2023\n"+want) {
		t.Errorf("verify -v printed:\n%s\nwant the listing, then:\n%s", r.stdout, want)
	}
}

// Proxmox's extract skips every disk -d does not name and ignores names it
// does not know; vmatool does the same, and warns.
func TestExtractUnknownDrive(t *testing.T) {
	dir := t.TempDir()
	archive := filepath.Join(vectorDir, "v02-two-disks.vma")
	target := filepath.Join(dir, "x")
	r := runInProcess(t, nil, nil, "extract", "-v", archive, "-d", "drive-nope", target).mustSucceed(t)
	if got := dirNames(t, target); strings.Join(got, " ") != "qemu-server.conf qemu-server.fw" {
		t.Errorf("extract -d drive-nope wrote %v, want the configs only", got)
	}
	if !strings.Contains(r.stderr, "warning: -d drive-nope: the archive has no such disk (it has: drive-efidisk0, drive-scsi0)") {
		t.Errorf("no warning: %q", r.stderr)
	}
	// vma's figures count the skipped disks too: the same lines as a full
	// extract, without DEVINFO.
	want := devinfoRe.ReplaceAllString(verboseCapture(t, "v02-two-disks", "extract-v"), "")
	want = strings.TrimLeft(want, "\n")
	if got := transcript(r.stdout, r.code); normalizeVerbose(got) != normalizeVerbose(want) {
		t.Errorf("extract -v -d drive-nope:\n%s\nwant:\n%s", got, want)
	}
	// Naming one disk extracts that one, and the skipped one still counts.
	target = filepath.Join(dir, "y")
	r = runInProcess(t, nil, nil, "extract", "-v", "-d", "drive-nope,drive-scsi0", archive, target).mustSucceed(t)
	if got := dirNames(t, target); strings.Join(got, " ") != "disk-drive-scsi0.raw qemu-server.conf qemu-server.fw" {
		t.Errorf("extract -d drive-nope,drive-scsi0 wrote %v", got)
	}
	want = strings.Replace(verboseCapture(t, "v02-two-disks", "extract-v"), "DEVINFO x/tmp-disk-drive-efidisk0.raw 540672\n", "", 1)
	if got := transcript(r.stdout, r.code); normalizeVerbose(got) != normalizeVerbose(want) {
		t.Errorf("extract -v -d drive-nope,drive-scsi0:\n%s\nwant:\n%s", got, want)
	}
}

// TestCreateAcceptsWhatVMAAccepts runs create on the inputs vma create
// takes and the old checks refused.
func TestCreateAcceptsWhatVMAAccepts(t *testing.T) {
	dir := t.TempDir()
	conf := writeFile(t, filepath.Join(dir, "qemu-server.conf"), []byte("memory: 512\n"))
	img := testImage(t, dir, "a.raw", 300<<10)
	list := func(t *testing.T, archive string) string {
		t.Helper()
		runInProcess(t, nil, nil, "verify", archive).mustSucceed(t)
		return runInProcess(t, nil, nil, "list", archive).mustSucceed(t).stdout
	}

	t.Run("vmstate device", func(t *testing.T) {
		state := testImage(t, t.TempDir(), "state.bin", 200<<10)
		out := filepath.Join(t.TempDir(), "s.vma")
		runInProcess(t, nil, nil, "create", out, "-c", conf, "-d", "format=raw:drive-scsi0="+img, "-d", "format=raw:vmstate="+state).mustSucceed(t)
		if l := list(t, out); !strings.Contains(l, "DEV: dev_id=1 size: 307200 devname: drive-scsi0\nVMSTATE: dev_id=2 memory: 204800\n") {
			t.Errorf("list:\n%s", l)
		}
		// vma's verify counts the VM state's whole clusters in the total
		// (its extract does not): 8 clusters read of 4+3.
		if r := runInProcess(t, nil, nil, "verify", "-v", out).mustSucceed(t); !strings.Contains(r.stdout, "\nprogress 114% (read 524288 bytes, duration ") {
			t.Errorf("verify -v:\n%s", r.stdout)
		}
		u := filepath.Join(t.TempDir(), "u")
		runInProcess(t, nil, nil, "unpack", "-q", out, u).mustSucceed(t)
		if fileSHA(t, filepath.Join(u, "vmstate.bin")) != fileSHA(t, state) || fileSHA(t, filepath.Join(u, "disk-drive-scsi0.raw")) != fileSHA(t, img) {
			t.Error("unpacked VM state or disk differs from the input")
		}
	})

	t.Run("same config twice", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "c.vma")
		runInProcess(t, nil, nil, "create", out, "-c", conf, "-c", conf, "-d", "format=raw:drive-scsi0="+img).mustSucceed(t)
		if l := list(t, out); strings.Count(l, "CFG: ") != 1 || !strings.Contains(l, "CFG: size: 12 name: qemu-server.conf\n") {
			t.Errorf("list:\n%s", l)
		}
		// Two different configs of one name would overwrite each other on
		// extraction: still refused, and nothing is left.
		other := writeFile(t, filepath.Join(t.TempDir(), "qemu-server.conf"), []byte("memory: 1024\n"))
		outDir := t.TempDir()
		r := runInProcess(t, nil, nil, "create", filepath.Join(outDir, "d.vma"), "-c", conf, "-c", other, "-d", "format=raw:drive-scsi0="+img)
		if r.code != 1 || !strings.Contains(r.stderr, "qemu-server.conf") {
			t.Errorf("two configs named alike: exit %d, %q", r.code, r.stderr)
		}
		assertEmptyDir(t, outDir)
	})

	t.Run("size not a multiple of 512", func(t *testing.T) {
		for _, size := range []int64{1000, 70000, 65536 + 511} {
			odd := testImage(t, t.TempDir(), "odd.raw", size)
			out := filepath.Join(t.TempDir(), "o.vma")
			runInProcess(t, nil, nil, "create", out, "-c", conf, "-d", "format=raw:drive-scsi0="+odd).mustSucceed(t)
			rounded := (size + 511) / 512 * 512
			if l := list(t, out); !strings.Contains(l, fmt.Sprintf("DEV: dev_id=1 size: %d devname: drive-scsi0\n", rounded)) {
				t.Errorf("size %d: list:\n%s", size, l)
			}
			// QEMU reads the rest of the last sector as zeros.
			u := filepath.Join(t.TempDir(), "u")
			runInProcess(t, nil, nil, "unpack", "-q", out, u).mustSucceed(t)
			b, _ := os.ReadFile(odd)
			padded := writeFile(t, filepath.Join(t.TempDir(), "padded"), append(b, make([]byte, rounded-size)...))
			if fileSHA(t, filepath.Join(u, "disk-drive-scsi0.raw")) != fileSHA(t, padded) {
				t.Errorf("size %d: unpacked disk is not the image padded with zeros", size)
			}
		}
	})

	t.Run("positional device", func(t *testing.T) {
		ids := []string{"--uuid", "00112233-4455-6677-8899-aabbccddeeff", "--ctime", "1700000000"}
		outDir := t.TempDir()
		pos, flagged := filepath.Join(outDir, "p.vma"), filepath.Join(outDir, "f.vma")
		r := runInProcess(t, nil, nil, append([]string{"create", pos, "-c", conf, "drive-scsi0=" + img, img}, ids...)...).mustSucceed(t)
		want := fmt.Sprintf("vmatool: warning: Specifying a device without a format is deprecated - use '-d format=<format>:drive-scsi0=%s'\n"+
			"vmatool: warning: Specifying a device without a format is deprecated - use '-d format=<format>:%s'\n", img, img)
		if r.stderr != want {
			t.Errorf("stderr %q, want %q", r.stderr, want)
		}
		runInProcess(t, nil, nil, append([]string{"create", flagged, "-c", conf, "-d", "format=raw:drive-scsi0=" + img, "-d", "format=raw:disk1=" + img}, ids...)...).mustSucceed(t)
		if fileSHA(t, pos) != fileSHA(t, flagged) {
			t.Error("the positional form gives another archive than -d")
		}
	})
}

// TestCreateVerboseStats checks vma's definitions on a disk whose last
// cluster is partial: the blocks past the end count as zeros, and "saved"
// is the size less those zeros.
func TestCreateVerboseStats(t *testing.T) {
	dir := t.TempDir()
	// 2 clusters + 8 KiB: cluster 0 full of data, cluster 1 zero, cluster
	// 2 one data block of its two.
	b := make([]byte, 2*65536+8192)
	for i := range 65536 {
		b[i] = 1
	}
	b[2*65536] = 1
	img := writeFile(t, filepath.Join(dir, "a.raw"), b)
	r := runInProcess(t, nil, nil, "create", "-v", filepath.Join(dir, "a.vma"), "-d", "format=raw:drive-scsi0="+img).mustSucceed(t)
	want := "progress 0% 0/139264 0\n" +
		"progress 47% 65536/139264 0\n" +
		"progress 94% 131072/139264 65536\n" +
		"progress 100% 139264/139264 126976\n" +
		"image drive-scsi0: size=139264 zeros=126976 saved=12288\n"
	if r.stderr != want {
		t.Errorf("create -v printed:\n%s\nwant:\n%s", r.stderr, want)
	}
	if r.stdout != "" {
		t.Errorf("stdout %q", r.stdout)
	}
}
