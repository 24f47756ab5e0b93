package main

import (
	"os"
	"runtime"
)

// homeDir is the user's home folder, where ~/.ssh is: USERPROFILE on
// Windows, as Windows's OpenSSH and os.UserHomeDir have it (HOME there is
// usually unset, or set by a Unix-like shell for its own use), HOME
// elsewhere. It reads the environment through getenv, so tests can set it.
func homeDir(getenv func(string) string) string {
	if runtime.GOOS == "windows" {
		if h := getenv("USERPROFILE"); h != "" {
			return h
		}
	}
	return getenv("HOME")
}

// tempDir is where deploy stages what it uploads: TMPDIR, read through
// getenv as os.TempDir reads it on Unix, so that tests can set it; on
// Windows, and without TMPDIR, os.TempDir's own choice.
func tempDir(getenv func(string) string) string {
	if runtime.GOOS != "windows" {
		if d := getenv("TMPDIR"); d != "" {
			return d
		}
	}
	return os.TempDir()
}
