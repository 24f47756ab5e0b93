package main

import "runtime"

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
