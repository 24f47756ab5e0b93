package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmatool/vmatool/internal/remote"
)

// readSSHConfig reads ~/.ssh/config then the system file, or only the file
// --ssh-config names, which must exist (as with ssh -F).
func TestReadSSHConfig(t *testing.T) {
	home := t.TempDir()
	sshDir := filepath.Join(home, ".ssh")
	if err := os.Mkdir(sshDir, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(p, content string) string {
		t.Helper()
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write(filepath.Join(sshDir, "config"), "Host pve1\n  HostName 10.1.1.1\n")
	named := write(filepath.Join(home, "named_config"), "Host pve1\n  HostName 10.2.2.2\n")
	system := write(filepath.Join(home, "ssh_config"), "Host *\n  User from-system\n")
	defer func(old string) { systemSSHConfig = old }(systemSSHConfig)
	systemSSHConfig = system
	getenv := func(k string) string { return map[string]string{"HOME": home}[k] }

	for _, tt := range []struct {
		named, host, user, errorHas string
	}{
		{"", "10.1.1.1", "from-system", ""},
		{named, "10.2.2.2", "root", ""},
		{filepath.Join(home, "absent"), "", "", "absent"},
	} {
		sc, err := readSSHConfig(getenv, tt.named)
		if tt.errorHas != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errorHas) {
				t.Errorf("--ssh-config %s: error %v, want one naming %q", tt.named, err, tt.errorHas)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := sc.Resolve(remote.Config{Host: "pve1"})
		if err != nil || cfg.Host != tt.host || cfg.User != tt.user {
			t.Errorf("--ssh-config %q: resolved %s@%s, %v; want %s@%s", tt.named, cfg.User, cfg.Host, err, tt.user, tt.host)
		}
	}
}
