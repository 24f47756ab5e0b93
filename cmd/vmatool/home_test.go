package main

import (
	"os"
	"runtime"
	"testing"
)

func TestHomeDir(t *testing.T) {
	env := map[string]string{"HOME": "/home/u", "USERPROFILE": `C:\Users\u`}
	want := "/home/u"
	if runtime.GOOS == "windows" {
		want = `C:\Users\u`
	}
	if got := homeDir(func(k string) string { return env[k] }); got != want {
		t.Errorf("homeDir = %q, want %q", got, want)
	}
	// Without USERPROFILE, Windows too falls back to HOME.
	delete(env, "USERPROFILE")
	if got := homeDir(func(k string) string { return env[k] }); got != "/home/u" {
		t.Errorf("homeDir without USERPROFILE = %q, want HOME", got)
	}
}

// TestTempDir: TMPDIR through getenv on Unix, so that a test's TMPDIR
// reaches a command run in process; os.TempDir without it.
func TestTempDir(t *testing.T) {
	want := "/var/stage"
	if runtime.GOOS == "windows" {
		want = os.TempDir()
	}
	if got := tempDir(func(k string) string { return map[string]string{"TMPDIR": "/var/stage"}[k] }); got != want {
		t.Errorf("tempDir with TMPDIR = %q, want %q", got, want)
	}
	if got := tempDir(func(string) string { return "" }); got != os.TempDir() {
		t.Errorf("tempDir without TMPDIR = %q, want %q", got, os.TempDir())
	}
}

// TestAgentSocket: SSH_AUTH_SOCK wins everywhere; without it there is no
// agent outside Windows (on Windows, the OpenSSH service's pipe if it runs).
func TestAgentSocket(t *testing.T) {
	if got := agentSocket(func(k string) string { return map[string]string{"SSH_AUTH_SOCK": "/run/agent.sock"}[k] }); got != "/run/agent.sock" {
		t.Errorf("agentSocket with SSH_AUTH_SOCK = %q", got)
	}
	if runtime.GOOS == "windows" {
		return
	}
	if got := agentSocket(func(string) string { return "" }); got != "" {
		t.Errorf("agentSocket without SSH_AUTH_SOCK = %q, want none", got)
	}
}
