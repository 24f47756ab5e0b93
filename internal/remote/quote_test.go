package remote_test

import (
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/vmatool/vmatool/internal/remote"
)

// hostile holds arguments that would run code, split or vanish if a
// command line were built without quoting.
var hostile = []string{
	"plain",
	"",
	"two words",
	"  leading and trailing  ",
	"it's",
	"'",
	"''",
	`"double"`,
	`back\slash`,
	"$(touch pwned)",
	"`touch pwned`",
	"${HOME}",
	"$HOME",
	"a;touch pwned",
	"a&&touch pwned",
	"a|cat",
	"line\nbreak",
	"tab\there",
	"-rf",
	"--force=1",
	"NAME=value",
	"~root",
	"*",
	"[a-z]?",
	"{a,b}",
	"#comment",
	"!event",
	"<in >out",
	"\x01\x7f\xff",
	"ünïcödé",
}

// shellArgs runs sh -c with line prefixed by a printf that echoes its
// arguments NUL-separated, and returns them.
func shellArgs(t *testing.T, shell, line string) []string {
	t.Helper()
	out, err := exec.Command(shell, "-c", `printf '%s\0' `+line).Output()
	if err != nil {
		t.Fatalf("%s -c %q: %v", shell, line, err)
	}
	got := strings.Split(string(out), "\x00")
	return got[:len(got)-1]
}

func TestShellQuote(t *testing.T) {
	for _, shell := range []string{"/bin/sh", "/bin/bash"} {
		if _, err := exec.LookPath(shell); err != nil {
			continue
		}
		t.Run(shell, func(t *testing.T) {
			dir := t.TempDir()
			for _, arg := range hostile {
				line := remote.ShellQuote(arg)
				cmd := exec.Command(shell, "-c", `printf '%s\0' `+line)
				cmd.Dir = dir
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("%q: %v", arg, err)
				}
				if got := strings.TrimSuffix(string(out), "\x00"); got != arg {
					t.Errorf("ShellQuote(%q) = %s: shell saw %q", arg, line, got)
				}
			}
			all := shellArgs(t, shell, remote.ShellQuote(hostile...))
			if !slices.Equal(all, hostile) {
				t.Errorf("all at once: got %q", all)
			}
			if ents, _ := exec.Command("ls", "-A", dir).Output(); len(ents) != 0 {
				t.Errorf("quoting let a command run: %s", ents)
			}
		})
	}
}

func TestShellQuoteRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	args := make([]string, 200)
	for i := range args {
		b := make([]byte, r.IntN(12))
		for j := range b {
			b[j] = byte(1 + r.IntN(255)) // any byte but NUL
		}
		args[i] = string(b)
	}
	if got := shellArgs(t, "/bin/sh", remote.ShellQuote(args...)); !slices.Equal(got, args) {
		t.Errorf("random arguments did not survive quoting")
	}
}

func TestShellQuoteBare(t *testing.T) {
	for in, want := range map[string]string{
		"qmrestore":              "qmrestore",
		"/var/lib/vz/dump/x.vma": "/var/lib/vz/dump/x.vma",
		"local:backup/a,b+c@d%e": "local:backup/a,b+c@d%e",
		"--force":                "--force",
		"a=b":                    "'a=b'",
		"":                       "''",
		"it's":                   `'it'\''s'`,
	} {
		if got := remote.ShellQuote(in); got != want {
			t.Errorf("ShellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
