package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// Tests that need a process of their own (peak RSS, signals, a
// terminal, the watchdog, exit statuses only the binary has) run the
// real binary, built once; the others run in process (runInProcess), so
// that coverage measures the package.
var vmatoolBin string

func TestMain(m *testing.M) {
	runRSSHelper()
	// Commands run in process print local time as the binary, run with
	// TZ=UTC, does.
	time.Local = time.UTC
	dir, err := os.MkdirTemp("", "vmatool-cli-test")
	if err != nil {
		panic(err)
	}
	vmatoolBin = filepath.Join(dir, "vmatool")
	out, err := exec.Command("go", "build", "-o", vmatoolBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building vmatool: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
	maxRSS         int64 // peak resident set size of the process in bytes, from rusage (see measure)
}

// vmatool runs the binary with TZ=UTC (list prints local time).
func vmatool(t *testing.T, stdin io.Reader, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(vmatoolBin, args...)
	cmd.Env = append(append(os.Environ(), "TZ=UTC", "SOURCE_DATE_EPOCH="), env...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	peak := measure(cmd)
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running vmatool %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code, peak()}
}

// maxRSSBound is the memory promise: peak RSS at or under 64 MiB on any input.
const maxRSSBound = 64 << 20

// assertRSS fails when the run's peak RSS went over the promise.
func (r result) assertRSS(t *testing.T) {
	t.Helper()
	if r.maxRSS > maxRSSBound {
		t.Errorf("peak RSS %.1f MiB, over the %d MiB bound (stderr: %s)", float64(r.maxRSS)/(1<<20), maxRSSBound>>20, r.stderr)
	}
}

func (r result) mustSucceed(t *testing.T) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d, stderr: %s\nstdout: %s", r.code, r.stderr, r.stdout)
	}
	return r
}

// requireTool skips without the tool, unless VMATOOL_REQUIRE_TOOLS=1 (CI),
// where a missing tool fails the test.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("VMATOOL_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s is required (VMATOOL_REQUIRE_TOOLS=1) but not installed", name)
	}
	t.Skipf("%s not installed; skipping (install it, or set VMATOOL_REQUIRE_TOOLS=1 to make this fail)", name)
	return ""
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func assertGone(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s exists after a failure", path)
	}
}

// assertEmptyDir checks nothing, not even a temporary file, was left.
func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	if names := dirNames(t, dir); len(names) > 0 {
		t.Errorf("%s holds %v after a failure", dir, names)
	}
}

const vectorDir = "../../testdata/vectors"

type vector struct {
	File            string  `json:"file"`
	Expect          string  `json:"expect"`
	UUID            *string `json:"uuid"`
	Ctime           *int64  `json:"ctime"`
	Configs         []item  `json:"configs"`
	Devices         []item  `json:"devices"`
	FileSHA256      string  `json:"file_sha256"`
	RepackIdentical bool    `json:"repack_identical"`
}

type item struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

func vectors(t *testing.T) []vector {
	b, err := os.ReadFile(filepath.Join(vectorDir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ Vectors []vector }
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m.Vectors
}

var errorText = map[string]string{
	"error: header checksum":   "header checksum mismatch",
	"error: extent checksum":   "extent checksum mismatch",
	"error: short extent":      "short extent",
	"error: missing cluster":   "missing cluster",
	"error: not a VMA archive": "not a VMA archive",
}

func TestVectorsCLI(t *testing.T) {
	for _, v := range vectors(t) {
		t.Run(v.File, func(t *testing.T) {
			path := filepath.Join(vectorDir, v.File)
			if v.Expect != "ok" {
				testErrorVector(t, v, path)
				return
			}
			list := runInProcess(t, nil, nil, "list", path).mustSucceed(t).stdout
			var want strings.Builder
			for _, c := range v.Configs {
				fmt.Fprintf(&want, "CFG: size: %d name: %s\n", c.Size, c.Name)
			}
			for i, d := range v.Devices {
				fmt.Fprintf(&want, "DEV: dev_id=%d size: %d devname: %s\n", i+1, d.Size, d.Name)
			}
			fmt.Fprintf(&want, "CTIME: %s\n", timeText(*v.Ctime))
			if list != want.String() {
				t.Errorf("list:\n%s\nwant:\n%s", list, want.String())
			}
			runInProcess(t, nil, nil, "verify", path).mustSucceed(t)

			dir := filepath.Join(t.TempDir(), "out")
			runInProcess(t, nil, nil, "unpack", "-q", path, dir).mustSucceed(t)
			var wantNames []string
			for _, c := range v.Configs {
				wantNames = append(wantNames, c.Name)
				if got := fileSHA(t, filepath.Join(dir, c.Name)); got != c.SHA256 {
					t.Errorf("config %s: sha256 %s, want %s", c.Name, got, c.SHA256)
				}
			}
			for _, d := range v.Devices {
				name := "disk-" + d.Name + ".raw"
				wantNames = append(wantNames, name)
				if got := fileSHA(t, filepath.Join(dir, name)); got != d.SHA256 {
					t.Errorf("device %s: sha256 %s, want %s", d.Name, got, d.SHA256)
				}
			}
			sort.Strings(wantNames)
			if got := dirNames(t, dir); strings.Join(got, " ") != strings.Join(wantNames, " ") {
				t.Errorf("unpacked %v, want %v", got, wantNames)
			}
			if v.RepackIdentical {
				testRepack(t, v, dir)
			}
		})
	}
}

func timeText(sec int64) string {
	out, _ := exec.Command("date", "-u", "-d", fmt.Sprintf("@%d", sec), "+%a %b %e %H:%M:%S %Y").Output()
	return strings.TrimSpace(string(out))
}

// testRepack packs the unpacked files again, with pack and with the
// Proxmox-compatible create, and expects Proxmox's archive byte for byte.
func testRepack(t *testing.T, v vector, dir string) {
	id := *v.UUID
	id = id[:8] + "-" + id[8:12] + "-" + id[12:16] + "-" + id[16:20] + "-" + id[20:]
	var cfgArgs, packDisks, createDisks []string
	for _, c := range v.Configs {
		cfgArgs = append(cfgArgs, "-c", filepath.Join(dir, c.Name))
	}
	for _, d := range v.Devices {
		p := filepath.Join(dir, "disk-"+d.Name+".raw")
		packDisks = append(packDisks, d.Name+"="+p)
		createDisks = append(createDisks, "-d", "format=raw:"+d.Name+"="+p)
	}
	out := filepath.Join(t.TempDir(), "repack.vma")
	args := append([]string{"pack", "-q", "-o", out, "--uuid", id, "--ctime", fmt.Sprint(*v.Ctime)}, cfgArgs...)
	if len(packDisks) == 0 {
		args = append(args, "--config-only")
	}
	runInProcess(t, nil, nil, append(args, packDisks...)...).mustSucceed(t)
	if got := fileSHA(t, out); got != v.FileSHA256 {
		t.Errorf("pack: sha256 %s, want %s", got, v.FileSHA256)
	}
	out2 := filepath.Join(t.TempDir(), "create.vma")
	args = append([]string{"create", out2, "--uuid", id, "--ctime", fmt.Sprint(*v.Ctime)}, cfgArgs...)
	runInProcess(t, nil, nil, append(args, createDisks...)...).mustSucceed(t)
	if got := fileSHA(t, out2); got != v.FileSHA256 {
		t.Errorf("create: sha256 %s, want %s", got, v.FileSHA256)
	}
}

func testErrorVector(t *testing.T, v vector, path string) {
	want := errorText[v.Expect]
	if want == "" {
		t.Fatalf("unknown expectation %q", v.Expect)
	}
	r := runInProcess(t, nil, nil, "verify", path)
	if r.code != 1 {
		t.Errorf("verify exit %d, want 1", r.code)
	}
	line := strings.TrimSuffix(r.stderr, "\n")
	if strings.Contains(line, "\n") || !strings.Contains(line, v.File) || !strings.Contains(line, "offset") || !strings.Contains(line, want) {
		t.Errorf("verify said %q; want one line naming %s, the offset and %q", r.stderr, v.File, want)
	}
	if strings.Contains(r.stderr, "panic") {
		t.Errorf("panic: %s", r.stderr)
	}
	var doc struct {
		OK     bool
		Kind   string
		Offset *int64
	}
	r = runInProcess(t, nil, nil, "verify", "--json", path)
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != 1 || doc.OK || doc.Offset == nil || !strings.Contains(doc.Kind, want) {
		t.Errorf("verify --json: exit %d, %+v, %v (%s)", r.code, doc, err, r.stdout)
	}
	parent := t.TempDir()
	dir := filepath.Join(parent, "out")
	if r := runInProcess(t, nil, nil, "unpack", path, dir); r.code != 1 {
		t.Errorf("unpack exit %d, want 1", r.code)
	}
	assertEmptyDir(t, parent)
	if r := runInProcess(t, nil, nil, "extract", path, dir); r.code != 1 {
		t.Errorf("extract exit %d, want 1", r.code)
	}
	assertEmptyDir(t, parent)
}

func TestHelp(t *testing.T) {
	for _, c := range commands {
		r := runInProcess(t, nil, nil, c.name, "--help").mustSucceed(t)
		if !strings.Contains(r.stdout, "EXAMPLES:") || !strings.Contains(r.stdout, "EXIT STATUS:") || !strings.Contains(r.stdout, "Usage: vmatool "+c.name) {
			t.Errorf("%s --help lacks usage, examples or exit status:\n%s", c.name, r.stdout)
		}
	}
	if r := runInProcess(t, nil, nil, "frobnicate"); r.code != 2 {
		t.Errorf("unknown command: exit %d, want 2", r.code)
	}
	if r := runInProcess(t, nil, nil, "verify"); r.code != 2 {
		t.Errorf("verify without archive: exit %d, want 2", r.code)
	}
}

func writeFile(t *testing.T, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// testImage writes a disk of the given size with data in a few places.
func testImage(t *testing.T, dir, name string, size int64) string {
	t.Helper()
	b := make([]byte, size)
	for i := int64(0); i < size; i += 12345 {
		b[i] = byte(i/12345 + 1)
	}
	return writeFile(t, filepath.Join(dir, name), b)
}

func TestPackRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	good := testImage(t, dir, "good.raw", 1<<20)
	odd := testImage(t, dir, "odd.raw", 1000)
	big := writeFile(t, filepath.Join(dir, "qemu-server.conf"), bytes.Repeat([]byte("#"), 70000))
	// Only create's free device names reach the format's limit: pack's
	// drive keys end at 59 (qemu-server's Drive.pm).
	many := []string{"create", "OUT"}
	for i := range 255 {
		many = append(many, "-d", fmt.Sprintf("format=raw:drive-virtio%d=%s", i, good))
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"size not a multiple of 512", []string{"pack", "-q", "-o", "OUT", odd}, 1, "multiple of 512"},
		{"missing disk", []string{"pack", "-q", "-o", "OUT", filepath.Join(dir, "nope.raw")}, 1, "nope.raw"},
		{"duplicate names", []string{"pack", "-q", "-o", "OUT", "scsi0=" + good, "drive-scsi0=" + good}, 2, "twice"},
		{"oversized config", []string{"pack", "-q", "-o", "OUT", "-c", big, good}, 1, "65535"},
		{"more than 254 disks", many, 1, "more than 254"},
		{"bad name", []string{"pack", "-q", "-o", "OUT", "net0=" + good}, 2, "drive key"},
		{"drive key past Proxmox's", []string{"pack", "-q", "-o", "OUT", "virtio16=" + good}, 2, "virtio16"},
		{"lzo output", []string{"pack", "-q", "-o", "OUT.vma.lzo", good}, 2, "lzop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outDir := t.TempDir()
			out := filepath.Join(outDir, "x.vma")
			for i, a := range tc.args {
				tc.args[i] = strings.Replace(a, "OUT", out, 1)
			}
			r := runInProcess(t, nil, nil, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", r.code, r.stderr, tc.code, tc.want)
			}
			assertEmptyDir(t, outDir)
		})
	}
}

func TestOutputsAreNotOverwritten(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, dir, "a.raw", 256<<10)
	out := writeFile(t, filepath.Join(dir, "a.vma"), []byte("precious"))
	if r := runInProcess(t, nil, nil, "pack", "-q", "-o", out, img); r.code != 1 || !strings.Contains(r.stderr, "--force") {
		t.Errorf("pack over an existing file: exit %d, %s", r.code, r.stderr)
	}
	if b, _ := os.ReadFile(out); string(b) != "precious" {
		t.Fatal("existing output was changed")
	}
	if r := runInProcess(t, nil, nil, "create", out, img); r.code != 1 {
		t.Errorf("create over an existing file: exit %d", r.code)
	}
	runInProcess(t, nil, nil, "pack", "-q", "--force", "-o", out, img).mustSucceed(t)
	runInProcess(t, nil, nil, "verify", out).mustSucceed(t)

	udir := filepath.Join(dir, "u")
	runInProcess(t, nil, nil, "unpack", "-q", out, udir).mustSucceed(t)
	conf := filepath.Join(udir, "qemu-server.conf")
	writeFile(t, conf, []byte("mine"))
	if r := runInProcess(t, nil, nil, "unpack", "-q", out, udir); r.code != 1 {
		t.Errorf("unpack over existing files: exit %d", r.code)
	}
	if b, _ := os.ReadFile(conf); string(b) != "mine" {
		t.Error("unpack overwrote a file without --force")
	}
	runInProcess(t, nil, nil, "unpack", "-q", "--force", out, udir).mustSucceed(t)
	if fileSHA(t, filepath.Join(udir, "disk-drive-scsi0.raw")) != fileSHA(t, img) {
		t.Error("unpacked disk differs from the packed image")
	}
	if r := runInProcess(t, nil, nil, "extract", out, udir); r.code != 1 || !strings.Contains(r.stderr, "unable to create target directory") {
		t.Errorf("extract into an existing directory: exit %d, %s", r.code, r.stderr)
	}
}

func TestPackRoundTrip(t *testing.T) {
	dir := t.TempDir()
	a := testImage(t, dir, "a.raw", 3<<20+8192)
	b := testImage(t, dir, "b.raw", 540672)
	for _, tc := range []struct{ out, magic string }{
		{"x.vma", "VMA\x00"},
		{"x.vma.zst", "\x28\xb5\x2f\xfd"},
		{"x.vma.gz", "\x1f\x8b"},
	} {
		t.Run(tc.out, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), tc.out)
			r := runInProcess(t, nil, nil, "pack", "-q", "-o", out, "--vmid", "123", a, "efidisk0="+b).mustSucceed(t)
			if r.stdout != "" {
				t.Errorf("--quiet printed %q", r.stdout)
			}
			head := make([]byte, 4)
			f, _ := os.Open(out)
			io.ReadFull(f, head)
			f.Close()
			if !strings.HasPrefix(tc.magic, string(head[:len(tc.magic)])) {
				t.Errorf("output starts with %q, want %q", head, tc.magic)
			}
			udir := filepath.Join(t.TempDir(), "u")
			runInProcess(t, nil, nil, "unpack", "-q", out, udir).mustSucceed(t)
			if fileSHA(t, filepath.Join(udir, "disk-drive-scsi0.raw")) != fileSHA(t, a) || fileSHA(t, filepath.Join(udir, "disk-drive-efidisk0.raw")) != fileSHA(t, b) {
				t.Error("unpacked disks differ from the images")
			}
			conf, _ := os.ReadFile(filepath.Join(udir, "qemu-server.conf"))
			for _, line := range []string{"#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:", "#qmdump#map:efidisk0:drive-efidisk0:local-lvm:raw:", "scsi0: local-lvm:vm-123-disk-0,size="} {
				if !strings.Contains(string(conf), line) {
					t.Errorf("generated config lacks %q:\n%s", line, conf)
				}
			}
		})
	}
	t.Run("external tools read the compressed output", func(t *testing.T) {
		requireTool(t, "zstd")
		out := filepath.Join(t.TempDir(), "x.vma.zst")
		runInProcess(t, nil, nil, "pack", "-q", "-o", out, a).mustSucceed(t)
		plain, err := exec.Command("zstd", "-dc", out).Output()
		if err != nil {
			t.Fatal(err)
		}
		runInProcess(t, bytes.NewReader(plain), nil, "verify", "-").mustSucceed(t)
	})
}

func TestStdinStdout(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, dir, "a.raw", 2<<20)
	r := runInProcess(t, nil, nil, "pack", "-q", "-o", "-", "--compress", "zstd", img).mustSucceed(t)
	if !strings.HasPrefix(r.stdout, "\x28\xb5\x2f\xfd") {
		t.Fatal("pack -o - --compress zstd did not write zstd")
	}
	runInProcess(t, strings.NewReader(r.stdout), nil, "unpack", "-q", "-", filepath.Join(dir, "u")).mustSucceed(t)
	if fileSHA(t, filepath.Join(dir, "u", "disk-drive-scsi0.raw")) != fileSHA(t, img) {
		t.Error("disk changed through stdout and stdin")
	}
	conf := runInProcess(t, strings.NewReader(r.stdout), nil, "config", "-").mustSucceed(t).stdout
	if !strings.Contains(conf, "#qmdump#map:scsi0:drive-scsi0:") {
		t.Errorf("config - printed %q", conf)
	}
	if r := runInProcess(t, strings.NewReader(r.stdout), nil, "config", "-c", "nope.conf", "-"); r.code != 1 || !strings.Contains(r.stderr, "unable to find configuration data 'nope.conf'") {
		t.Errorf("missing config: exit %d, %q", r.code, r.stderr)
	}
}

func TestSourceDateEpochIsReproducible(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, dir, "a.raw", 1<<20)
	env := []string{"SOURCE_DATE_EPOCH=1700000000"}
	var sums []string
	for i := range 2 {
		out := filepath.Join(dir, fmt.Sprintf("o%d", i))
		os.Mkdir(out, 0o755)
		r := runInProcess(t, nil, env, "pack", "-o", out, "--vmid", "9999", img).mustSucceed(t)
		want := filepath.Join(out, "vzdump-qemu-9999-2023_11_14-22_13_20.vma.zst")
		if strings.TrimSpace(r.stdout) != want {
			t.Fatalf("pack printed %q, want %q", r.stdout, want)
		}
		sums = append(sums, fileSHA(t, want))
	}
	if sums[0] != sums[1] {
		t.Error("two packs of the same inputs under SOURCE_DATE_EPOCH differ")
	}
	list := runInProcess(t, nil, nil, "list", "--json", filepath.Join(dir, "o0", "vzdump-qemu-9999-2023_11_14-22_13_20.vma.zst")).mustSucceed(t).stdout
	if !strings.Contains(list, `"ctime_unix": 1700000000`) || !strings.Contains(list, `"ctime": "2023-11-14T22:13:20Z"`) {
		t.Errorf("ctime is not SOURCE_DATE_EPOCH: %s", list)
	}
}

func TestDisklessArchive(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "d.vma")
	runInProcess(t, nil, nil, "pack", "-q", "-o", out, "--config-only").mustSucceed(t)
	r := runInProcess(t, nil, nil, "list", out).mustSucceed(t)
	if !strings.HasPrefix(r.stdout, "CFG: size: ") || strings.Contains(r.stdout, "DEV:") {
		t.Errorf("diskless archive lists as %q", r.stdout)
	}
	if st, _ := os.Stat(out); st.Size()%512 != 0 {
		t.Errorf("size %d", st.Size())
	}
}

func TestExtractCompat(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "restore")
	r := runInProcess(t, nil, nil, "extract", filepath.Join(vectorDir, "v02-two-disks.vma"), "-v", "-d", "drive-scsi0", target).mustSucceed(t)
	// DEVINFO names the file being written: in the staging folder beside
	// the target, which becomes the target once complete.
	devinfo := regexp.MustCompile(`(?m)^DEVINFO ` + regexp.QuoteMeta(dir+string(filepath.Separator)) + `\.vmatool-[0-9a-f]+/disk-drive-scsi0\.raw 1048576$`)
	if !devinfo.MatchString(r.stdout) {
		t.Errorf("no DEVINFO line: %q", r.stdout)
	}
	got := dirNames(t, target)
	if strings.Join(got, " ") != "disk-drive-scsi0.raw qemu-server.conf qemu-server.fw" {
		t.Errorf("extract -d wrote %v", got)
	}
	// A name the archive lacks is ignored, as Proxmox ignores it (more in
	// TestExtractUnknownDrive).
	runInProcess(t, nil, nil, "extract", filepath.Join(vectorDir, "v02-two-disks.vma"), "-d", "drive-nope", filepath.Join(dir, "x")).mustSucceed(t)
	if got := dirNames(t, filepath.Join(dir, "x")); strings.Join(got, " ") != "qemu-server.conf qemu-server.fw" {
		t.Errorf("extract -d drive-nope wrote %v", got)
	}
}

func TestCreateExecTarget(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, dir, "a.raw", 1<<20)
	conf := writeFile(t, filepath.Join(dir, "qemu-server.conf"), []byte("memory: 512\n"))
	out := filepath.Join(dir, "piped.vma")
	runInProcess(t, nil, nil, "create", "exec:cat > "+out, "-c", conf, "-d", "format=raw:drive-scsi0="+img).mustSucceed(t)
	runInProcess(t, nil, nil, "verify", out).mustSucceed(t)
	r := runInProcess(t, nil, nil, "create", "exec:exit 3", "-c", conf, img)
	if r.code != 1 || !strings.Contains(r.stderr, "exit status 3") {
		t.Errorf("failing command: exit %d, %q", r.code, r.stderr)
	}
	if r := runInProcess(t, nil, nil, "create", filepath.Join(dir, "x.vma"), "-d", "format=raw:a="+img, "b="+img); r.code != 2 || !strings.Contains(r.stderr, "specify all devices via '-d'") {
		t.Errorf("mixed -d and positional: exit %d, %q", r.code, r.stderr)
	}
}

// assertOneLine checks that the run failed with exit status 1 and one
// line on stderr that holds every want.
func assertOneLine(t *testing.T, r result, want ...string) {
	t.Helper()
	if r.code != 1 {
		t.Errorf("exit %d, want 1 (stderr %q)", r.code, r.stderr)
	}
	line, ok := strings.CutSuffix(r.stderr, "\n")
	if !ok || strings.Contains(line, "\n") {
		t.Errorf("stderr %q is not one line", r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(line, w) {
			t.Errorf("stderr %q does not mention %q", line, w)
		}
	}
	if strings.Contains(r.stderr, "panic") {
		t.Errorf("panic: %s", r.stderr)
	}
}
