package main

import (
	"os"
	"runtime"

	"github.com/vmatool/vmatool/internal/remote"
)

// agentSocket is the ssh-agent deploy uses: SSH_AUTH_SOCK when set. On
// Windows, without it, the pipe of Windows's OpenSSH agent service when
// that is running, as Windows's ssh does; a missing agent there is no
// error, since key files work without one.
func agentSocket(getenv func(string) string) string {
	if sock := getenv("SSH_AUTH_SOCK"); sock != "" || runtime.GOOS != "windows" {
		return sock
	}
	if _, err := os.Stat(remote.WindowsAgentPipe); err == nil {
		return remote.WindowsAgentPipe
	}
	return ""
}
