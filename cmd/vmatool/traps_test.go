package main

// The "no silent traps" tests: each command line that used to do
// something the user did not mean now stops with a message that says
// what to do (or, for a name qmrestore refuses, warns).

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// vmatoolIn runs vmatool in process with dir as the working folder (for
// the rest of the test), for commands whose relative outputs must land in
// a test's own folder.
func vmatoolIn(t *testing.T, dir string, stdin []byte, args ...string) result {
	t.Helper()
	t.Chdir(dir)
	var in io.Reader
	if stdin != nil {
		in = bytes.NewReader(stdin)
	}
	return runInProcess(t, in, nil, args...)
}

// assertUsage checks for exit status 2 and a message holding every want.
func assertUsage(t *testing.T, r result, want ...string) {
	t.Helper()
	if r.code != 2 {
		t.Errorf("exit %d, want 2 (stderr %q)", r.code, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr %q does not mention %q", r.stderr, w)
		}
	}
}

// TestPackNeedsDisksOrConfigOnly: pack -o X with no disk used to write a
// config-only archive named X without a word.
func TestPackNeedsDisksOrConfigOnly(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, dir, "a.raw", 64<<10)
	out := filepath.Join(dir, "x.vma")
	assertUsage(t, runInProcess(t, nil, nil, "pack", "-q", "-o", out), "no DISK given", "--config-only")
	assertGone(t, out)
	assertUsage(t, runInProcess(t, nil, nil, "pack", "-q", "--config-only", "-o", out, img), "--config-only", "leave out one or the other")
	assertGone(t, out)
	runInProcess(t, nil, nil, "pack", "-q", "--config-only", "-o", out).mustSucceed(t)
	if l := runInProcess(t, nil, nil, "list", out).mustSucceed(t).stdout; strings.Contains(l, "DEV:") || !strings.Contains(l, "CFG: ") {
		t.Errorf("--config-only archive lists as %q", l)
	}
}

// TestOutputFolderMissing: an output into a folder that does not exist
// said "open dir/.vmatool-1a2b...: no such file or directory".
func TestOutputFolderMissing(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, dir, "a.raw", 64<<10)
	missing := filepath.Join(dir, "nodir")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"pack into a missing folder", []string{"pack", "-q", "-o", missing + "/", img}, missing + "/: no such folder"},
		{"pack to a file in a missing folder", []string{"pack", "-q", "-o", filepath.Join(missing, "x.vma.zst"), img}, missing + ": no such folder (create it first)"},
		{"pack into a file named as a folder", []string{"pack", "-q", "-o", img + "/", img}, img + "/: not a folder"},
		{"convert to a file in a missing folder", []string{"convert", "-q", img, filepath.Join(missing, "x.qcow2")}, missing + ": no such folder (create it first)"},
		{"convert an archive disk to a missing folder", []string{"convert", "-q", "-d", "scsi0", filepath.Join(vectorDir, "v02-two-disks.vma"), filepath.Join(missing, "x.raw")}, missing + ": no such folder (create it first)"},
		{"create in a missing folder", []string{"create", filepath.Join(missing, "x.vma"), "-d", "format=raw:drive-scsi0=" + img}, missing + ": no such folder (create it first)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runInProcess(t, nil, nil, tc.args...)
			assertOneLine(t, r, tc.want)
			if strings.Contains(r.stderr, tempPrefix) {
				t.Errorf("the message names a temporary file: %q", r.stderr)
			}
			assertGone(t, missing)
		})
	}
	// An existing folder, with or without the slash, gets a vzdump name.
	for _, out := range []string{dir + "/", dir} {
		r := runInProcess(t, nil, []string{"SOURCE_DATE_EPOCH=1700000000"}, "pack", "--force", "-o", out, img).mustSucceed(t)
		if want := filepath.Join(dir, "vzdump-qemu-100-2023_11_14-22_13_20.vma.zst") + "\n"; r.stdout != want || r.stderr != "" {
			t.Errorf("pack -o %s: stdout %q, stderr %q; want %q", out, r.stdout, r.stderr, want)
		}
	}
}

// TestWriteErrorNamesTheOutput: an error while writing an output named the
// temporary file, gone by the time the message is read. A file size limit
// (ulimit -f; Go ignores SIGXFSZ, so the write fails with EFBIG) makes
// the write fail.
func TestWriteErrorNamesTheOutput(t *testing.T) {
	requireTool(t, "sh")
	dir := t.TempDir()
	img := testImage(t, dir, "a.raw", 4<<20)
	v02 := filepath.Join(vectorDir, "v02-two-disks.vma")
	for _, tc := range []struct {
		name, final string
		args        []string
	}{
		{"pack", filepath.Join(dir, "x.vma"), []string{"pack", "-q", "-o", filepath.Join(dir, "x.vma"), img}},
		{"convert to one file", filepath.Join(dir, "x.raw"), []string{"convert", "-q", "-d", "scsi0", v02, filepath.Join(dir, "x.raw")}},
		// The first disk, 528 KiB, is past the limit.
		{"unpack", filepath.Join(dir, "u", "disk-drive-efidisk0.raw"), []string{"unpack", "-q", v02, filepath.Join(dir, "u")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// 256 KiB: in 512-byte blocks (dash, POSIX) or 1 KiB ones (bash),
			// smaller than every output here either way.
			cmd := exec.Command("sh", append([]string{"-c", `ulimit -f 256 && exec "$0" "$@"`, vmatoolBin}, tc.args...)...)
			var errb bytes.Buffer
			cmd.Stderr = &errb
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("%v, stderr %q; want exit 1", err, errb.String())
			}
			msg := errb.String()
			if strings.Contains(msg, tempPrefix) || !strings.Contains(msg, tc.final) || !strings.Contains(msg, "file too large") {
				t.Errorf("stderr %q: want the output %s and the reason, and no temporary name", msg, tc.final)
			}
			if names := dirNames(t, dir); strings.Join(names, " ") != "a.raw" {
				t.Errorf("left behind: %v", names)
			}
		})
	}
}

// TestCompressionAgreesWithName: --compress zstd -o x.vma.gz wrote zstd
// into a .gz file.
func TestCompressionAgreesWithName(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, dir, "a.raw", 64<<10)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"pack", "-q", "--compress", "zstd", "-o", filepath.Join(dir, "x.vma.gz"), img}, "name the output " + filepath.Join(dir, "x.vma.zst")},
		{[]string{"pack", "-q", "--compress", "gzip", "-o", filepath.Join(dir, "x.vma.zst"), img}, "name the output " + filepath.Join(dir, "x.vma.gz")},
		{[]string{"pack", "-q", "--compress", "none", "-o", filepath.Join(dir, "x.vma.zst"), img}, "name the output " + filepath.Join(dir, "x.vma") + ","},
		{[]string{"pack", "-q", "--compress", "zstd", "-o", filepath.Join(dir, "x.vma"), img}, "says uncompressed"},
		{[]string{"pack", "-q", "--compress", "zstd", "-o", filepath.Join(dir, "x.vma.lzo"), img}, "says lzop"},
		{[]string{"convert", "-q", "-c", img, filepath.Join(dir, "x.vma")}, "leave out -c"},
		{[]string{"convert", "-q", "--compression", "gzip", img, filepath.Join(dir, "x.vma.zst")}, "leave out --compression"},
	} {
		t.Run(strings.Join(tc.args[2:len(tc.args)-2], " ")+" "+filepath.Base(tc.args[len(tc.args)-1]), func(t *testing.T) {
			assertUsage(t, runInProcess(t, nil, nil, tc.args...), tc.want)
			if names := dirNames(t, dir); strings.Join(names, " ") != "a.raw" {
				t.Errorf("left behind: %v", names)
			}
		})
	}
	// A name that agrees, and one that says nothing, are taken.
	out := filepath.Join(t.TempDir(), "vzdump-qemu-100-x.vma.zst")
	runInProcess(t, nil, nil, "pack", "-q", "--compress", "zstd", "-o", out, img).mustSucceed(t)
	plain := filepath.Join(t.TempDir(), "backup")
	runInProcess(t, nil, nil, "pack", "-q", "--compress", "gzip", "-o", plain, img).mustSucceed(t)
	if b, _ := os.ReadFile(plain); !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		t.Error("--compress gzip to a name without suffix did not write gzip")
	}
}

// TestRestoreNameWarning: qmrestore refuses an archive whose name is not
// vzdump-qemu-*.vma[.zst|.gz|.lzo|.bz2]; pack says so and still writes it.
func TestRestoreNameWarning(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"vzdump-qemu-100-2024_01_01-00_00_00.vma.zst", true},
		{"vzdump-qemu-100-2024_01_01-00_00_00.vma", true},
		{"vzdump-qemu-9-x.vma.gz", true},
		{"vzdump-qemu-9-x.vma.lzo", true},
		{"vzdump-qemu-9-x.vma.bz2", true},
		{"vzdump-qemu-.vma", false}, // .+ needs a character
		{"vzdump-lxc-100-x.vma.zst", false},
		{"vzdump-qemu-100-x.tar.zst", false},
		{"nixos.vma.zst", false},
		{"vzdump-qemu-100-x.vma.xz", false},
		{"vzdump-qemu-100-x.vma.zst.part", false},
	} {
		if got := restoreNameWarning("/some/dir/"+tc.name) == ""; got != tc.ok {
			t.Errorf("%s: accepted %v, want %v", tc.name, got, tc.ok)
		}
	}

	dir := t.TempDir()
	img := testImage(t, dir, "a.raw", 64<<10)
	out := filepath.Join(dir, "nixos.vma.zst")
	r := runInProcess(t, nil, nil, "pack", "-o", out, img).mustSucceed(t)
	if r.stdout != out+"\n" || !strings.Contains(r.stderr, "warning: qmrestore refuses nixos.vma.zst") || !strings.Contains(r.stderr, "vzdump-qemu-<VMID>-") {
		t.Errorf("stdout %q, stderr %q: want the path and a warning", r.stdout, r.stderr)
	}
	runInProcess(t, nil, nil, "verify", out).mustSucceed(t)
	good := filepath.Join(dir, "vzdump-qemu-100-x.vma.zst")
	if r := runInProcess(t, nil, nil, "pack", "-o", good, img).mustSucceed(t); r.stderr != "" {
		t.Errorf("a vzdump name warned: %q", r.stderr)
	}
	if r := runInProcess(t, nil, nil, "pack", "-q", "-o", filepath.Join(dir, "quiet.vma"), img).mustSucceed(t); r.stderr != "" {
		t.Errorf("--quiet warned: %q", r.stderr)
	}
}

// TestDashMeansStandardStreams: info - reads an archive from standard
// input; unpack ARCHIVE - made a folder named "-".
func TestDashMeansStandardStreams(t *testing.T) {
	v02, err := filepath.Abs(filepath.Join(vectorDir, "v02-two-disks.vma"))
	if err != nil {
		t.Fatal(err)
	}
	archive, err := os.ReadFile(v02)
	if err != nil {
		t.Fatal(err)
	}
	fromFile := runInProcess(t, nil, nil, "info", "--json", v02).mustSucceed(t).stdout
	fromStdin := runInProcess(t, bytes.NewReader(archive), nil, "info", "--json", "-").mustSucceed(t).stdout
	if want := strings.Replace(fromFile, `"file": "`+v02+`"`, `"file": "-"`, 1); fromStdin != want {
		t.Errorf("info - printed\n%s\nwant\n%s", fromStdin, want)
	}
	if text := runInProcess(t, bytes.NewReader(archive), nil, "info", "-").mustSucceed(t).stdout; !strings.Contains(text, "disk drive-scsi0: 1.0 MiB") {
		t.Errorf("info - printed %q", text)
	}
	image, _ := os.ReadFile(demoImage)
	assertOneLine(t, runInProcess(t, bytes.NewReader(image), nil, "info", "-"), "not a VMA archive", "standard input must hold an archive")

	dir := t.TempDir()
	r := vmatoolIn(t, dir, archive, "unpack", "-q", "-", "-")
	assertUsage(t, r, "convert -d DEV -O raw - -")
	assertEmptyDir(t, dir)
	r = vmatoolIn(t, dir, nil, "unpack", "-q", v02, "-")
	assertUsage(t, r, "vmatool convert -d DEV -O raw "+v02+" -")
	assertEmptyDir(t, dir)
	// ./- is a folder named -, for whoever wants one.
	vmatoolIn(t, dir, archive, "unpack", "-q", "-", "./-").mustSucceed(t)
	if names := dirNames(t, filepath.Join(dir, "-")); len(names) != 4 {
		t.Errorf("./- holds %v", names)
	}

	// pack reads disks at random offsets, and configs under their names.
	img := testImage(t, t.TempDir(), "a.raw", 64<<10)
	assertUsage(t, vmatoolIn(t, dir, archive, "pack", "-q", "-o", "x.vma", "-"), "standard input", "write it to a file first")
	assertUsage(t, vmatoolIn(t, dir, archive, "pack", "-q", "-o", "x.vma", "-c", "-", img), "-c -", "write it to a file")
	assertGone(t, filepath.Join(dir, "x.vma"))
}

// TestDriveNamesWithoutPrefix: unpack -d scsi0 said the archive had no
// such device; extract keeps Proxmox's exact names.
func TestDriveNamesWithoutPrefix(t *testing.T) {
	v02 := filepath.Join(vectorDir, "v02-two-disks.vma")
	want := vectorDevice(t, "v02-two-disks.vma", "drive-scsi0")
	for _, name := range []string{"scsi0", "drive-scsi0"} {
		for _, args := range [][]string{{"unpack", "-q", "-d", name, v02}, {"convert", "-q", "-O", "raw", "-d", name, v02}} {
			t.Run(args[0]+" "+name, func(t *testing.T) {
				out := filepath.Join(t.TempDir(), "out")
				if args[0] == "convert" {
					out += ".raw"
				}
				runInProcess(t, nil, nil, append(args, out)...).mustSucceed(t)
				disk := out
				if args[0] == "unpack" {
					if names := dirNames(t, out); strings.Join(names, " ") != "disk-drive-scsi0.raw qemu-server.conf qemu-server.fw" {
						t.Fatalf("unpack -d %s wrote %v", name, names)
					}
					disk = filepath.Join(out, "disk-drive-scsi0.raw")
				}
				if got := fileSHA(t, disk); got != want {
					t.Errorf("sha256 %s, want %s", got, want)
				}
			})
		}
	}
	r := runInProcess(t, nil, nil, "unpack", "-q", "-d", "scsi9", v02, filepath.Join(t.TempDir(), "o"))
	assertOneLine(t, r, `no device named "scsi9"`, "drive-efidisk0, drive-scsi0")

	// vma extract -d scsi0 extracts no disk (it matches drive-scsi0
	// exactly), and so does vmatool extract, with its warning.
	out := filepath.Join(t.TempDir(), "x")
	r = runInProcess(t, nil, nil, "extract", v02, "-d", "scsi0", out).mustSucceed(t)
	if names := dirNames(t, out); strings.Join(names, " ") != "qemu-server.conf qemu-server.fw" || !strings.Contains(r.stderr, "-d scsi0: the archive has no such disk") {
		t.Errorf("extract -d scsi0 wrote %v, said %q", names, r.stderr)
	}
}

// vectorDevice is the sha256 the manifest gives for a device of a vector.
func vectorDevice(t *testing.T, file, device string) string {
	t.Helper()
	for _, v := range vectors(t) {
		if v.File != file {
			continue
		}
		for _, d := range v.Devices {
			if d.Name == device {
				return d.SHA256
			}
		}
	}
	t.Fatalf("no device %s in vector %s", device, file)
	return ""
}

// loopingMBR is an 8 MiB disk whose MBR has an extended partition whose
// first EBR names itself as the next: a damaged partition table. The EBR
// is at LBA 64, within the first 64 KiB that info keeps of a disk in an
// archive.
func loopingMBR() []byte {
	d := make([]byte, 8<<20)
	entry := func(at []byte, typ byte, start, size uint32) {
		at[4] = typ
		binary.LittleEndian.PutUint32(at[8:], start)
		binary.LittleEndian.PutUint32(at[12:], size)
	}
	entry(d[446:], 0x0f, 64, 8192)
	d[510], d[511] = 0x55, 0xaa
	ebr := d[64*512:]
	entry(ebr[446:], 0x83, 63, 100)
	entry(ebr[462:], 0x05, 0, 100) // the next EBR: itself
	ebr[510], ebr[511] = 0x55, 0xaa
	return d
}

// TestInfoDamagedPartitionTable: info on a disk whose partition table is
// damaged printed only an error; now everything else, and a warning.
func TestInfoDamagedPartitionTable(t *testing.T) {
	dir := t.TempDir()
	img := writeFile(t, filepath.Join(dir, "loop.raw"), loopingMBR())
	archive := filepath.Join(dir, "loop.vma")
	runInProcess(t, nil, nil, "pack", "-q", "-o", archive, img).mustSucceed(t)
	for _, tc := range []struct{ path, what string }{{img, img}, {archive, archive + ": device drive-scsi0"}} {
		t.Run(filepath.Base(tc.path), func(t *testing.T) {
			r := runInProcess(t, nil, nil, "info", tc.path).mustSucceed(t)
			warning := "vmatool info: warning: " + tc.what + ": ptable: corrupt partition table: extended partition at LBA 64: EBR chain loops"
			if !strings.HasPrefix(r.stderr, warning) || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("stderr %q, want one line starting %q", r.stderr, warning)
			}
			for _, want := range []string{"virtual size:", "8.0 MiB", "partitions: unreadable: ptable: corrupt partition table"} {
				if tc.path == archive && want == "virtual size:" {
					want = "uuid:"
				}
				if !strings.Contains(r.stdout, want) {
					t.Errorf("info printed no %q:\n%s", want, r.stdout)
				}
			}
			r = runInProcess(t, nil, nil, "info", "--json", tc.path).mustSucceed(t)
			var doc infoDoc
			if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
				t.Fatal(err)
			}
			if len(doc.Warnings) != 1 || !strings.HasPrefix("vmatool info: warning: "+doc.Warnings[0], warning) ||
				len(doc.Disks) != 1 || doc.Disks[0].Partitions != nil || doc.Disks[0].Size != 8<<20 {
				t.Errorf("--json: warnings %q, disks %+v", doc.Warnings, doc.Disks)
			}
		})
	}
	// Without damage, the array is there and empty.
	if doc := infoJSON(t, demoImage); doc.Warnings == nil || len(doc.Warnings) != 0 {
		t.Errorf("warnings %#v, want []", doc.Warnings)
	}
}

// TestSuggestions: unknown commands and flags name the nearest, and
// qemu-img's "SRC DST" habit on pack names -o.
func TestSuggestions(t *testing.T) {
	r := runInProcess(t, nil, nil, "pakc")
	assertUsage(t, r, "vmatool: unknown command pakc; did you mean pack?\n")
	r = runInProcess(t, nil, nil, "frobnicate")
	assertUsage(t, r, "unknown command frobnicate\n")
	r = runInProcess(t, nil, nil, "pack", "--compres", "zstd")
	assertUsage(t, r, "vmatool pack: unknown flag --compres; did you mean --compress?\n")
	r = runInProcess(t, nil, nil, "verify", "--jsno", "x")
	assertUsage(t, r, "unknown flag --jsno; did you mean --json?\n")
	r = runInProcess(t, nil, nil, "unpack", "--frobnicate", "x")
	assertUsage(t, r, "unknown flag --frobnicate\n")
	r = runInProcess(t, nil, nil, "list", "-x", "a.vma")
	assertUsage(t, r, "unknown flag -x (the short flags of this command: -h)")

	dir := t.TempDir()
	img := testImage(t, dir, "in.raw", 64<<10)
	out := filepath.Join(dir, "out.vma.zst")
	r = runInProcess(t, nil, nil, "pack", img, out)
	assertUsage(t, r, out+" does not exist and looks like the archive to write", "vmatool pack -o "+out)
	assertGone(t, out)
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{
		{"", "", 0}, {"pack", "pack", 0}, {"pakc", "pack", 2}, {"compres", "compress", 1},
		{"", "abc", 3}, {"kitten", "sitting", 3}, {"jsno", "json", 2}, {"ünpack", "unpack", 1},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.d)
		}
	}
	if got := suggest("lsit", []string{"list", "info", "unpack"}); !reflect.DeepEqual(got, []string{"list"}) {
		t.Errorf("suggest lsit: %v", got)
	}
	if got := suggest("lsit", []string{"list", "lint"}); !reflect.DeepEqual(got, []string{"lint", "list"}) {
		t.Errorf("suggest lsit among ties: %v", got)
	}
	if got := suggest("lst", []string{"list", "last", "pack"}); !reflect.DeepEqual(got, []string{"last", "list"}) {
		t.Errorf("suggest lst: %v", got)
	}
	if got := suggest("deploy", []string{"pack", "info"}); got != nil {
		t.Errorf("suggest deploy: %v", got)
	}
	// Three edits away is too far, also when nothing is nearer.
	if got := suggest("complet", []string{"completion", "config"}); got != nil {
		t.Errorf("suggest complet: %v", got)
	}
	if got := suggest("completoin", []string{"completion", "config"}); !reflect.DeepEqual(got, []string{"completion"}) {
		t.Errorf("suggest completoin: %v", got)
	}
}

// TestJSONShapeShared: info, list and verify describe the same archive
// with the same fields, of one Go type (ArchiveDoc).
func TestJSONShapeShared(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, dir, "a.raw", 1<<20)
	packed := filepath.Join(dir, "vzdump-qemu-100-x.vma.zst")
	runInProcess(t, nil, nil, "pack", "-q", "-o", packed, "--ctime", "1700000000", img, "efidisk0="+img).mustSucceed(t)
	for _, path := range []string{packed, filepath.Join(vectorDir, "v02-two-disks.vma")} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			var docs []map[string]json.RawMessage
			var typed []ArchiveDoc
			for _, c := range []string{"info", "list", "verify"} {
				r := runInProcess(t, nil, nil, c, "--json", path).mustSucceed(t)
				var m map[string]json.RawMessage
				var d ArchiveDoc
				if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
					t.Fatalf("%s: %v", c, err)
				}
				if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
					t.Fatalf("%s: %v", c, err)
				}
				if string(m["file"]) != `"`+path+`"` {
					t.Errorf("%s: file %s", c, m["file"])
				}
				docs, typed = append(docs, m), append(typed, d)
			}
			for _, k := range []string{"uuid", "ctime", "ctime_unix", "compression", "configs", "devices"} {
				for i, c := range []string{"list", "verify"} {
					if a, b := compactJSON(t, docs[0][k]), compactJSON(t, docs[i+1][k]); a == "" || a != b {
						t.Errorf("%s: info has %s, %s has %s", k, a, c, b)
					}
				}
			}
			d := typed[0]
			ct, err := time.Parse(time.RFC3339, d.Ctime)
			if err != nil || ct.Unix() != d.CtimeUnix || len(d.Devices) != 2 || d.Devices[0].ID != 1 || d.Devices[1].Size == 0 || len(d.Configs) == 0 {
				t.Errorf("shared fields %+v (%v)", d, err)
			}
			if !reflect.DeepEqual(typed[0], typed[1]) || !reflect.DeepEqual(typed[0], typed[2]) {
				t.Errorf("the shared type differs:\n%+v\n%+v\n%+v", typed[0], typed[1], typed[2])
			}
			if _, ok := docs[2]["stats"]; !ok {
				t.Error("verify --json has no stats")
			}
			if _, ok := docs[0]["disks"]; !ok {
				t.Error("info --json has no disks")
			}
		})
	}
	if d := listDoc(t, packed); d.CtimeUnix != 1700000000 || d.Ctime != "2023-11-14T22:13:20Z" || d.Compression != "zstd" ||
		d.Devices[1].Name != "drive-efidisk0" || d.Devices[1].Size != 1<<20 || d.Devices[1].StoredBytes == 0 {
		t.Errorf("list --json of the packed archive: %+v", d)
	}
}

func listDoc(t *testing.T, path string) ArchiveDoc {
	t.Helper()
	var d ArchiveDoc
	if err := json.Unmarshal([]byte(runInProcess(t, nil, nil, "list", "--json", path).mustSucceed(t).stdout), &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func compactJSON(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	if raw == nil {
		return ""
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestErrorsPrintedOnce: a failing command prints its error once, on
// one line, whether it prints a document (verify --json) or not.
func TestErrorsPrintedOnce(t *testing.T) {
	bad := filepath.Join(vectorDir, "e02-extent-md5.vma")
	dir := t.TempDir()
	for _, args := range [][]string{
		{"verify", bad}, {"verify", "-q", bad}, {"list", "--json", bad}, {"info", bad}, {"info", "--json", bad},
		{"unpack", "-q", bad, filepath.Join(dir, "u")}, {"convert", "-q", bad, filepath.Join(dir, "c")},
	} {
		t.Run(strings.Join(args[:len(args)-1], " "), func(t *testing.T) {
			r := runInProcess(t, nil, nil, args...)
			assertOneLine(t, r, "extent checksum mismatch")
		})
	}
	r := runInProcess(t, nil, nil, "verify", "--json", bad)
	if r.code != 1 || r.stderr != "" || strings.Count(r.stdout, "extent checksum mismatch") != 2 { // error and kind
		t.Errorf("verify --json: exit %d, stderr %q, stdout %s", r.code, r.stderr, r.stdout)
	}
	assertEmptyDir(t, dir)
}

// TestDashForEveryStream: "-" is standard output for create's archive and
// standard input for extract's map and deploy's targets file; where a
// stream cannot serve (deploy's SOURCE and --config, create -c), it is a
// usage error that says what to do, never a file named "-".
func TestDashForEveryStream(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, dir, "a.raw", 128<<10)
	conf := writeFile(t, filepath.Join(dir, "qemu-server.conf"), []byte("memory: 512\n"))
	v02, err := filepath.Abs(filepath.Join(vectorDir, "v02-two-disks.vma"))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("create -", func(t *testing.T) {
		cwd := t.TempDir()
		r := vmatoolIn(t, cwd, nil, "create", "-", "-c", conf, "-d", "format=raw:drive-scsi0="+img).mustSucceed(t)
		assertEmptyDir(t, cwd)
		list := runInProcess(t, strings.NewReader(r.stdout), nil, "list", "-").mustSucceed(t).stdout
		if !strings.Contains(list, "CFG: size: 12 name: qemu-server.conf\n") || !strings.Contains(list, "DEV: dev_id=1 size: 131072 devname: drive-scsi0\n") {
			t.Errorf("the archive on standard output lists as %q", list)
		}
		s, out, _ := fakeStreams(false)
		s.outIsTTY = true
		o := defaults[createOptions]()
		o.args, o.devices = []string{"-"}, []string{"format=raw:drive-scsi0=" + img}
		if err := runCreate(context.Background(), s, o); !errors.Is(err, errTerminal) || out.Len() != 0 {
			t.Errorf("create - on a terminal: %v, %d bytes written; want errTerminal and none", err, out.Len())
		}
		assertUsage(t, runInProcess(t, nil, nil, "create", filepath.Join(cwd, "x.vma"), "-c", "-", "-d", "format=raw:drive-scsi0="+img), "-c -", "write it to a file")
		assertGone(t, filepath.Join(cwd, "x.vma"))
	})

	t.Run("extract -r -", func(t *testing.T) {
		vols := t.TempDir()
		efi := writeFile(t, filepath.Join(vols, "efi.raw"), make([]byte, 540672))
		scsi := writeFile(t, filepath.Join(vols, "scsi.raw"), make([]byte, 1<<20))
		lines := fmt.Sprintf("format=raw:0:drive-efidisk0=%s\nformat=raw:0:drive-scsi0=%s\ndone\n", efi, scsi)
		runInProcess(t, strings.NewReader(lines), nil, "extract", "-r", "-", v02, filepath.Join(vols, "tmp")).mustSucceed(t)
		for name, path := range map[string]string{"drive-efidisk0": efi, "drive-scsi0": scsi} {
			if got, want := fileSHA(t, path), vectorDevice(t, "v02-two-disks.vma", name); got != want {
				t.Errorf("%s: sha256 %s, want %s", name, got, want)
			}
		}
		r := runInProcess(t, strings.NewReader("done\n"), nil, "extract", "-r", "-", v02, filepath.Join(vols, "tmp2"))
		assertOneLine(t, r, "<stdin>: no device name mapping for drive-efidisk0")
		archive, err := os.ReadFile(v02)
		if err != nil {
			t.Fatal(err)
		}
		assertUsage(t, runInProcess(t, bytes.NewReader(archive), nil, "extract", "-r", "-", "-", filepath.Join(vols, "tmp3")), "both want standard input")
		assertGone(t, filepath.Join(vols, "tmp3"))
	})

	t.Run("deploy", func(t *testing.T) {
		targets := `{"web1": {"host": "root@pve.invalid", "vmid": 201}, "web2": {"host": "root@pve.invalid", "vmid": 202}}`
		r := runInProcess(t, strings.NewReader(targets), deployEnvVars, "deploy", "--dry-run", "--targets", "-", img).mustSucceed(t)
		if !strings.Contains(r.stdout, "web1: VM 201 on root@pve.invalid") || !strings.Contains(r.stdout, "web2: VM 202 on root@pve.invalid") {
			t.Errorf("--targets - planned:\n%s", r.stdout)
		}
		r = runInProcess(t, strings.NewReader(`{"web1": {"host": "h", "vmid": 201, "strage": "x"}}`), deployEnvVars, "deploy", "--dry-run", "--targets", "-", img)
		assertUsage(t, r, "<stdin>: targets.web1.strage: unknown key")
		assertUsage(t, runInProcess(t, nil, deployEnvVars, "deploy", "--dry-run", "--host", "root@pve.invalid", "--vmid", "120", "-"), "SOURCE cannot be standard input", "write it to a file first")
		assertUsage(t, runInProcess(t, nil, deployEnvVars, "deploy", "--dry-run", "--host", "root@pve.invalid", "--vmid", "120", "--config", "-", img), "--config -", "write it to a file first")
	})
}

// TestCreateRefusesArchiveAsDevice: -d format=raw:...=ARCHIVE, which vma
// would store as a disk's bytes, is refused as pack refuses it, and no
// output is left.
func TestCreateRefusesArchiveAsDevice(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "x.vma")
	for _, dev := range []string{"format=raw:drive-scsi0=", "format=raw:"} {
		archive := filepath.Join(vectorDir, "v01-single.vma.zst")
		r := runInProcess(t, nil, nil, "create", out, "-d", dev+archive)
		assertOneLine(t, r, archive+": a VMA archive, not a disk image", "vmatool convert")
		assertGone(t, out)
	}
	// A qcow2 device is still detected as qcow2, and a raw one as raw.
	img := testImage(t, dir, "a.raw", 64<<10)
	runInProcess(t, nil, nil, "create", out, "-d", "format=raw:drive-scsi0="+img).mustSucceed(t)
}

// TestFlagErrorsOfBuiltinCommands: completion's shells and version name a
// mistyped flag's nearest, as the other commands do.
func TestFlagErrorsOfBuiltinCommands(t *testing.T) {
	r := runInProcess(t, nil, nil, "completion", "bash", "--no-descriptoins")
	assertUsage(t, r, "vmatool completion bash: unknown flag --no-descriptoins; did you mean --no-descriptions?\n")
	r = runInProcess(t, nil, nil, "version", "--jsno")
	assertUsage(t, r, "vmatool version: unknown flag --jsno\n")
}
