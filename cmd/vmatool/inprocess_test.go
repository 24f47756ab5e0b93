package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// runInProcess is vmatool(t, stdin, env, args...) in this process: the root command
// with fake streams, so that coverage measures the package. The command
// sees, through getenv only, the environment vmatool gives the binary:
// this process's, with TZ=UTC, SOURCE_DATE_EPOCH unset and env's KEY=VALUE
// pairs. GOMEMLIMIT reads as set, so that deploy leaves this process's
// memory limit alone. No RSS: the test process's own peak says nothing
// about a command's.
func runInProcess(t *testing.T, stdin io.Reader, env []string, args ...string) result {
	t.Helper()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	vars := map[string]string{"GOMEMLIMIT": "off"}
	for _, kv := range append(append(os.Environ(), "TZ=UTC", "SOURCE_DATE_EPOCH="), env...) {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	var out, errb bytes.Buffer
	s := &streams{
		in: stdin, out: &out, err: &errb,
		now:    time.Now,
		getenv: func(k string) string { return vars[k] },
	}
	code := run(context.Background(), s, args)
	return result{out.String(), errb.String(), code, 0}
}

// TestInProcessListConfigVerify runs list, config, info and verify on
// the vectors in process: the same bytes as the manifest says.
func TestInProcessListConfigVerify(t *testing.T) {
	archive := filepath.Join(vectorDir, "v02-two-disks.vma")
	r := runInProcess(t, nil, nil, "list", archive).mustSucceed(t)
	for _, want := range []string{"CFG: size: 359 name: qemu-server.conf\n", "DEV: dev_id=1 size: 540672 devname: drive-efidisk0\n", "DEV: dev_id=2 size: 1048576 devname: drive-scsi0\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("list: missing %q in %q", want, r.stdout)
		}
	}
	r = runInProcess(t, nil, nil, "config", "-c", "qemu-server.fw", archive).mustSucceed(t)
	if len(r.stdout) != 56 {
		t.Errorf("config -c qemu-server.fw: %d bytes, want 56", len(r.stdout))
	}
	runInProcess(t, nil, nil, "verify", "-q", archive).mustSucceed(t)
	runInProcess(t, nil, nil, "info", archive).mustSucceed(t)
	r = runInProcess(t, nil, nil, "verify", "-q", filepath.Join(vectorDir, "e02-extent-md5.vma"))
	if r.code != exitError || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("verify of a damaged archive: exit %d, stderr %q; want 1 and one line", r.code, r.stderr)
	}
}

// TestInProcessUnpackVectors unpacks every vector in process and checks
// each disk against the manifest's sha256.
func TestInProcessUnpackVectors(t *testing.T) {
	for _, v := range vectors(t) {
		if v.Expect != "ok" {
			continue
		}
		t.Run(v.File, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			runInProcess(t, nil, nil, "unpack", "-q", filepath.Join(vectorDir, v.File), dir).mustSucceed(t)
			for _, d := range v.Devices {
				if got := fileSHA(t, filepath.Join(dir, "disk-"+d.Name+".raw")); got != d.SHA256 {
					t.Errorf("%s: sha256 %s, want %s", d.Name, got, d.SHA256)
				}
			}
		})
	}
}

// TestInProcessUsage: help, unknown commands and flags, in process, with
// the statuses and messages of the binary.
func TestInProcessUsage(t *testing.T) {
	r := runInProcess(t, nil, nil, "pakc")
	if r.code != exitUsage || !strings.HasPrefix(r.stderr, "vmatool: unknown command pakc; did you mean pack?\n") {
		t.Errorf("pakc: exit %d, stderr %q", r.code, r.stderr)
	}
	r = runInProcess(t, nil, nil, "pack", "--compres", "zstd")
	if r.code != exitUsage || !strings.HasPrefix(r.stderr, "vmatool pack: unknown flag --compres; did you mean --compress?\n") {
		t.Errorf("pack --compres: exit %d, stderr %q", r.code, r.stderr)
	}
	r = runInProcess(t, nil, nil, "unpack", "-x", "a", "b")
	if r.code != exitUsage || !strings.Contains(r.stderr, "unknown flag -x (the short flags of this command: -d -f -h -q)") {
		t.Errorf("unpack -x: exit %d, stderr %q", r.code, r.stderr)
	}
	for _, c := range commands {
		r = runInProcess(t, nil, nil, c.name, "--help").mustSucceed(t)
		if !strings.HasPrefix(r.stdout, "Usage: vmatool "+c.name) || !strings.HasSuffix(r.stdout, exitStatusHelp) || !strings.Contains(r.stdout, "  -h, --help") {
			t.Errorf("%s --help: %q", c.name, r.stdout)
		}
	}
	r = runInProcess(t, nil, nil, "help", "list").mustSucceed(t)
	if !strings.HasPrefix(r.stdout, "Usage: vmatool list") {
		t.Errorf("help list: %q", r.stdout)
	}
	r = runInProcess(t, nil, nil, "verify", "--progress", "-q", "x")
	if r.code != exitUsage || !strings.Contains(r.stderr, "--progress and --quiet contradict each other") {
		t.Errorf("verify --progress -q: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestCompletionScripts generates the four scripts and loads the bash one
// into bash, which must then know how to complete vmatool.
func TestCompletionScripts(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_vmatool", "zsh": "#compdef vmatool", "fish": "complete -c vmatool", "powershell": "Register-ArgumentCompleter"} {
		r := runInProcess(t, nil, nil, "completion", shell).mustSucceed(t)
		if !strings.Contains(r.stdout, want) {
			t.Errorf("completion %s: no %q in the script", shell, want)
		}
	}
	bash := requireTool(t, "bash")
	out, err := exec.Command(bash, "-c", "source <("+vmatoolBin+" completion bash) && complete -p vmatool").CombinedOutput()
	if err != nil {
		t.Fatalf("loading the bash completion: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); !strings.HasPrefix(got, "complete ") || !strings.HasSuffix(got, " vmatool") || !strings.Contains(got, "__start_vmatool") {
		t.Errorf("complete -p vmatool: %q", got)
	}
}

// completions runs cobra's __complete and returns the candidates it
// offers (the last line is the directive).
func completions(t *testing.T, args ...string) []string {
	t.Helper()
	r := runInProcess(t, nil, nil, append([]string{"__complete"}, args...)...).mustSucceed(t)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	return lines[:len(lines)-1]
}

// TestCompleteDevices: -d of unpack, convert and extract offers the
// archive's disks, and only those matching what is typed.
func TestCompleteDevices(t *testing.T) {
	archive := filepath.Join(vectorDir, "v02-two-disks.vma")
	for _, args := range [][]string{
		{"unpack", archive, "-d", ""},
		{"convert", archive, "-d", ""},
		{"extract", archive, "-d", ""},
		{"unpack", "--devices", "", archive},
	} {
		got := completions(t, args...)
		if args[1] == "--devices" {
			// The archive comes after the flag: nothing to open yet.
			if len(got) != 0 {
				t.Errorf("%v: %q, want none", args, got)
			}
			continue
		}
		if strings.Join(got, ",") != "drive-efidisk0,drive-scsi0" {
			t.Errorf("%v: %q", args, got)
		}
	}
	if got := completions(t, "unpack", archive, "-d", "drive-s"); strings.Join(got, ",") != "drive-scsi0" {
		t.Errorf("-d drive-s: %q", got)
	}
	if got := completions(t, "unpack", filepath.Join(vectorDir, "e05-not-vma.vma"), "-d", ""); len(got) != 0 {
		t.Errorf("not an archive: %q, want none", got)
	}
}

// TestCompleteTargets: deploy --target offers the names in the --targets
// file, named or numbered.
func TestCompleteTargets(t *testing.T) {
	file := filepath.Join(t.TempDir(), "targets.json")
	if err := os.WriteFile(file, []byte(`[{"name": "db1", "host": "root@pve.invalid"}, {"name": "web1", "host": "root@pve.invalid"}, {"host": "root@pve.invalid"}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := completions(t, "deploy", "--targets", file, "--target", ""); strings.Join(got, ",") != "db1,web1,target3" {
		t.Errorf("--target: %q", got)
	}
	if got := completions(t, "deploy", "--targets="+file, "--target", "w"); strings.Join(got, ",") != "web1" {
		t.Errorf("--target w: %q", got)
	}
	if got := completions(t, "deploy", "--target", ""); len(got) != 0 {
		t.Errorf("no --targets: %q, want none", got)
	}
}

// TestManPages writes the man pages and checks each command has one with
// its flags and exit status, and that man can format it.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	runInProcess(t, nil, nil, "man", dir).mustSucceed(t)
	for _, c := range append([]command{{name: ""}}, commands...) {
		name := "vmatool.1"
		if c.name != "" {
			name = "vmatool-" + c.name + ".1"
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		page := string(data)
		if !strings.HasPrefix(page, ".TH ") || !strings.Contains(page, ".SH EXIT STATUS\n") {
			t.Errorf("%s: no .TH or EXIT STATUS section", name)
		}
		if c.name != "" && (!strings.Contains(page, ".SH OPTIONS\n") || !strings.Contains(page, "show this help")) {
			t.Errorf("%s: no OPTIONS with the flags", name)
		}
	}
	if _, err := exec.LookPath("man"); err == nil {
		out, err := exec.Command("man", "-l", filepath.Join(dir, "vmatool-unpack.1")).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--devices") {
			t.Errorf("man -l vmatool-unpack.1: %v\n%s", err, out)
		}
	}
}

// TestOverviewListsEveryCommand: the overview (vmatool, vmatool --help,
// vmatool help) lists every command a person runs, completion and help
// included, and completion and the man pages list exactly the same.
func TestOverviewListsEveryCommand(t *testing.T) {
	want := []string{"completion"}
	for _, c := range commands {
		want = append(want, c.name)
	}
	want = append(want, "help")
	sort.Strings(want)

	for _, args := range [][]string{{}, {"--help"}, {"-h"}, {"help"}} {
		r := runInProcess(t, nil, nil, args...)
		if wantCode := map[bool]int{true: exitUsage, false: exitOK}[len(args) == 0]; r.code != wantCode {
			t.Errorf("vmatool %v: exit %d, want %d", args, r.code, wantCode)
		}
		_, list, ok := strings.Cut(r.stdout, "\nCommands:\n")
		list, _, _ = strings.Cut(list, "\n\n")
		var names []string
		for _, line := range strings.Split(list, "\n") {
			if f := strings.Fields(line); ok && len(f) > 1 {
				names = append(names, f[0])
			}
		}
		if !reflect.DeepEqual(names, want) {
			t.Errorf("vmatool %v lists %v, want %v", args, names, want)
		}
	}

	var offered []string
	for _, c := range completions(t, "") {
		name, _, _ := strings.Cut(c, "\t")
		offered = append(offered, name)
	}
	if !reflect.DeepEqual(offered, want) {
		t.Errorf("completion offers %v, want %v", offered, want)
	}

	dir := t.TempDir()
	runInProcess(t, nil, nil, "man", dir).mustSucceed(t)
	overview, err := os.ReadFile(filepath.Join(dir, "vmatool.1"))
	if err != nil {
		t.Fatal(err)
	}
	var listed, pages []string
	for _, m := range regexp.MustCompile(`(?m)^\.BR vmatool-(\S+) \(1\)$`).FindAllStringSubmatch(string(overview), -1) {
		listed = append(listed, m[1])
	}
	for _, name := range dirNames(t, dir) {
		if p, ok := strings.CutPrefix(name, "vmatool-"); ok {
			pages = append(pages, strings.TrimSuffix(p, ".1"))
		}
	}
	if !reflect.DeepEqual(listed, want) || !reflect.DeepEqual(pages, want) {
		t.Errorf("vmatool.1 lists %v and the pages are %v, want %v", listed, pages, want)
	}
	page, err := os.ReadFile(filepath.Join(dir, "vmatool-completion.1"))
	if err != nil || !strings.Contains(string(page), ".SH SYNOPSIS\n.nf\nvmatool completion bash|zsh|fish|powershell") || !strings.Contains(string(page), ".SH EXIT STATUS\n") {
		t.Errorf("vmatool-completion.1 (%v):\n%s", err, page)
	}
}

// TestBuiltinCommands: completion, help and version have helps of their
// own, and completion refuses a missing or unknown shell as a usage
// error, naming the nearest.
func TestBuiltinCommands(t *testing.T) {
	for _, args := range [][]string{{"completion", "--help"}, {"help", "completion"}, {"completion", "zsh", "--help"}} {
		r := runInProcess(t, nil, nil, args...).mustSucceed(t)
		if !strings.HasPrefix(r.stdout, "Usage: vmatool completion bash|zsh|fish|powershell") || !strings.HasSuffix(r.stdout, exitStatusHelp) {
			t.Errorf("vmatool %v: %q", args, r.stdout)
		}
	}
	for _, args := range [][]string{{"help", "help"}, {"help", "--help"}} {
		r := runInProcess(t, nil, nil, args...).mustSucceed(t)
		if r.stdout != helpHelp+exitStatusHelp {
			t.Errorf("vmatool %v: %q", args, r.stdout)
		}
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		r := runInProcess(t, nil, nil, args...).mustSucceed(t)
		if r.stdout != "vmatool "+version()+"\n" {
			t.Errorf("vmatool %v: %q", args, r.stdout)
		}
	}
	if r := runInProcess(t, nil, nil, "version", "--help").mustSucceed(t); !strings.HasPrefix(r.stdout, "Usage: vmatool version\n") {
		t.Errorf("version --help: %q", r.stdout)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"completion"}, "vmatool completion: want a shell: bash, fish, powershell, zsh\n"},
		{[]string{"completion", "bas"}, "vmatool completion: unknown shell bas; did you mean bash? (want one of bash, fish, powershell, zsh)\n"},
		{[]string{"completion", "bash", "extra"}, "vmatool completion bash: "},
		{[]string{"version", "extra"}, "vmatool version: version takes no arguments, got 1\n"},
		{[]string{"help", "pakc"}, "vmatool: unknown command pakc; did you mean pack?\n"},
	} {
		r := runInProcess(t, nil, nil, tc.args...)
		if r.code != exitUsage || !strings.HasPrefix(r.stderr, tc.want) {
			t.Errorf("vmatool %v: exit %d, stderr %q; want 2 and %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}
