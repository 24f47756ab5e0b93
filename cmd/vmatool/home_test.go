package main

import (
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
