package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestDeploySSHSettings(t *testing.T) {
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
	write(filepath.Join(sshDir, "config"), "Host pve1\n  HostName 10.1.1.1\n  Port 2222\n  User deploy\n  IdentityFile ~/.ssh/pve_key\n  ProxyJump bastion\n"+
		"Host bastion\n  HostName bastion.example\n")
	named := write(filepath.Join(home, "named_config"), "Host pve1\n  HostName 10.2.2.2\n")
	// A system file of this test's own, read after the user's file.
	system := write(filepath.Join(home, "ssh_config"), "Host *\n  SendEnv LANG LC_*\n  HashKnownHosts yes\n  User from-system\n")
	defer func(old string) { systemSSHConfig = old }(systemSSHConfig)
	systemSSHConfig = system
	env := map[string]string{"HOME": home, "SSH_AUTH_SOCK": "/agent.sock"}
	getenv := func(k string) string { return env[k] }

	tests := []struct {
		args                 []string
		user, host           string
		port                 int
		identities, jumps    []string
		knownHosts, errorHas string
	}{
		{args: []string{"--host", "pve1"}, user: "deploy", host: "10.1.1.1", port: 2222,
			identities: []string{key}, jumps: []string{"bastion.example"}, knownHosts: filepath.Join(sshDir, "known_hosts")},
		{args: []string{"--host", "admin@pve1:22", "-i", flagKey, "--known-hosts", "/kh"}, user: "admin", host: "10.1.1.1", port: 22,
			identities: []string{flagKey, key}, jumps: []string{"bastion.example"}, knownHosts: "/kh"},
		{args: []string{"--host", "node.example"}, user: "from-system", host: "node.example", port: 22,
			knownHosts: filepath.Join(sshDir, "known_hosts")},
		{args: []string{"--host", "pve1", "--ssh-config", named}, user: "root", host: "10.2.2.2", port: 22,
			knownHosts: filepath.Join(sshDir, "known_hosts")},
		{args: []string{"--host", "pve1", "--ssh-config", filepath.Join(home, "absent")}, errorHas: "absent"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			fs := pflag.NewFlagSet("deploy", pflag.ContinueOnError)
			var o deployOptions
			bindDeployFlags(fs, &o)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			cfg, err := o.sshSettings(getenv)
			if tt.errorHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errorHas) {
					t.Fatalf("sshSettings error = %v, want one naming %q", err, tt.errorHas)
				}
				return
			}
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
