package remote

import (
	"runtime"
	"strings"
	"testing"
)

func TestIsNamedPipe(t *testing.T) {
	for path, want := range map[string]bool{
		`\\.\pipe\openssh-ssh-agent`: true,
		`//./pipe/openssh-ssh-agent`: true,
		`\\.\PIPE\agent`:             true,
		`\\.\pipe\`:                  false,
		"/tmp/ssh-XXXX/agent.123":    false,
		`C:\Users\me\agent.sock`:     false,
		"":                           false,
	} {
		if got := isNamedPipe(path); got != want {
			t.Errorf("isNamedPipe(%q) = %v, want %v", path, got, want)
		}
	}
}

// A pipe name outside Windows is refused by name, not dialled as a Unix
// socket of that odd name.
func TestNamedPipeOutsideWindows(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("named pipes are real on Windows")
	}
	_, err := dialAgentSocket(WindowsAgentPipe)
	if err == nil || !strings.Contains(err.Error(), "Windows named pipe") {
		t.Fatalf("dialAgentSocket(%q) = %v, want the named-pipe refusal", WindowsAgentPipe, err)
	}
}
