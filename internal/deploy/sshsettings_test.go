package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/vmatool/vmatool/internal/remote"
)

// A target's host may be an alias of the OpenSSH client config the caller
// read; what the target says wins over the file, as ssh's command line
// does.
func TestSSHSettingsFromSSHConfig(t *testing.T) {
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
	key := write(filepath.Join(sshDir, "pve_key"), "key")
	flagKey := write(filepath.Join(home, "flag_key"), "key")
	conf := write(filepath.Join(sshDir, "config"), "Host pve1\n  HostName 10.1.1.1\n  Port 2222\n  User deploy\n  IdentityFile ~/.ssh/pve_key\n  ProxyJump bastion\n"+
		"Host bastion\n  HostName bastion.example\n")
	sc, err := remote.ReadSSHConfig(remote.SSHConfigOptions{UserFile: conf, LocalUser: "me", Home: home, DefaultUser: "root"})
	if err != nil {
		t.Fatal(err)
	}
	kh := filepath.Join(sshDir, "known_hosts")
	tests := []struct {
		target            Target
		user, host        string
		port              int
		identities, jumps []string
		knownHosts        string
	}{
		{Target{Host: "pve1"}, "deploy", "10.1.1.1", 2222, []string{key}, []string{"bastion.example"}, kh},
		{Target{Host: "admin@pve1:22", Identity: []string{flagKey}, KnownHosts: "/kh"}, "admin", "10.1.1.1", 22,
			[]string{flagKey, key}, []string{"bastion.example"}, "/kh"},
		{Target{Host: "node.example"}, "root", "node.example", 22, nil, nil, kh},
	}
	for _, tt := range tests {
		t.Run(tt.target.Host, func(t *testing.T) {
			cfg, err := sshSettings(&tt.target, Options{SSHConfig: sc, AgentSocket: "/agent.sock", Home: home})
			if err != nil {
				t.Fatal(err)
			}
			var jumps []string
			for _, j := range cfg.Jumps {
				jumps = append(jumps, j.Host)
			}
			if cfg.User != tt.user || cfg.Host != tt.host || cfg.Port != tt.port || !slices.Equal(cfg.IdentityFiles, tt.identities) ||
				!slices.Equal(jumps, tt.jumps) || cfg.KnownHostsFile != tt.knownHosts || !cfg.UseAgent || cfg.AgentSocket != "/agent.sock" {
				t.Errorf("sshSettings = %+v", cfg)
			}
		})
	}
}
