package remote

import (
	"io"
	"net"
	"strings"
)

// dialAgentSocket connects to the ssh-agent at sock. On Unix that is a
// Unix socket. Windows's own OpenSSH agent listens on a named pipe
// (\\.\pipe\openssh-ssh-agent), which SSH_AUTH_SOCK may name; a path
// that is not a pipe is still tried as a Unix socket there, since Windows
// has had AF_UNIX since 10 1803.
func dialAgentSocket(sock string) (io.ReadWriteCloser, error) {
	if isNamedPipe(sock) {
		return openNamedPipe(sock)
	}
	return net.Dial("unix", sock)
}

// isNamedPipe reports whether path names a Windows named pipe, in either
// slash direction (\\.\pipe\name or //./pipe/name).
func isNamedPipe(path string) bool {
	p := strings.ToLower(strings.ReplaceAll(path, "/", `\`))
	return strings.HasPrefix(p, `\\.\pipe\`) && len(p) > len(`\\.\pipe\`)
}

// WindowsAgentPipe is where Windows's OpenSSH agent service listens; its
// ssh client uses it when SSH_AUTH_SOCK is unset.
const WindowsAgentPipe = `\\.\pipe\openssh-ssh-agent`
