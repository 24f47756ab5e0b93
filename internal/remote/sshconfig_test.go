package remote_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/vmatool/vmatool/internal/remote"
)

// sshHome is a scratch home directory with a .ssh directory.
type sshHome struct {
	t    *testing.T
	dir  string
	ssh  string // dir/.ssh
	etc  string // a stand-in for /etc/ssh
	opts remote.SSHConfigOptions
}

func newSSHHome(t *testing.T) *sshHome {
	t.Helper()
	dir := t.TempDir()
	h := &sshHome{t: t, dir: dir, ssh: filepath.Join(dir, ".ssh"), etc: filepath.Join(dir, "etc-ssh")}
	for _, d := range []string{h.ssh, h.etc} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	h.opts = remote.SSHConfigOptions{
		UserFile:    filepath.Join(h.ssh, "config"),
		SystemFile:  filepath.Join(h.etc, "ssh_config"),
		MissingOK:   true,
		LocalUser:   "alice",
		Home:        dir,
		DefaultUser: "root",
	}
	return h
}

// write creates a file under the home directory (or at an absolute path)
// and returns its path.
func (h *sshHome) write(name, content string) string {
	h.t.Helper()
	p := name
	if !filepath.IsAbs(p) {
		p = filepath.Join(h.dir, name)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		h.t.Fatal(err)
	}
	return p
}

func (h *sshHome) resolve(flags remote.Config) (remote.Config, error) {
	sc, err := remote.ReadSSHConfig(h.opts)
	if err != nil {
		return remote.Config{}, err
	}
	return sc.Resolve(flags)
}

// resolved is the part of a Config that Resolve fills in.
type resolved struct {
	User, Host     string
	Port           int
	IdentityFiles  []string
	IdentitiesOnly bool
	KnownHosts     []string
	Jumps          []remote.Hop
}

func project(c remote.Config) resolved {
	return resolved{
		User: c.User, Host: c.Host, Port: c.Port,
		IdentityFiles: c.IdentityFiles, IdentitiesOnly: c.IdentitiesOnly,
		KnownHosts: append([]string{c.KnownHostsFile}, c.ExtraKnownHostsFiles...),
		Jumps:      c.Jumps,
	}
}

func TestSSHConfigResolve(t *testing.T) {
	h := newSSHHome(t)
	// Key files Resolve may pick; their content does not matter to it.
	key := func(name string) string { return h.write(".ssh/"+name, "key") }
	idWork, idLab, idJump, idDefault := key("id_work"), key("id_lab"), key("id_jump"), key("id_ed25519")
	flagKey := h.write("elsewhere/flag_key", "key")
	defKnown := []string{filepath.Join(h.ssh, "known_hosts"), filepath.Join(h.ssh, "known_hosts2")}
	uid := strconv.Itoa(os.Getuid())

	h.write(".ssh/config", `# vmatool test configuration
Host node1 node1-alias
    HostName 10.0.0.11
    Port 2222
    User deploy
    IdentityFile ~/.ssh/id_work
    IdentityFile ~/.ssh/absent_key
    UserKnownHostsFile ~/.ssh/fleet_hosts "~/.ssh/with space"

Host pve?
    HostName %h.lab.example
    IdentityFile %d/.ssh/id_lab
    IdentitiesOnly yes

Host *.lab !secret.lab
    User labuser
    Port 2200

Host tokens
    HostName tokens.example
    User tok
    Port 2022
    IdentityFile %d/.ssh/%r@%h:%p-%n-%u-%i-100%%

Host jumped
    HostName 10.0.1.5
    ProxyJump bastion

Host two-jumps
    ProxyJump bastion,deploy@inner:2201

Host via-inner
    ProxyJump inner

Host inner
    HostName 10.0.9.9
    ProxyJump bastion

Host bastion
    HostName bastion.example
    Port 2022
    IdentityFile ~/.ssh/id_jump

Host uri
    ProxyJump ssh://carol@[2001:db8::1]:2200

Host nojump
    ProxyJump none

Host include-here
    Include conf.d/*.conf

Host matched
    HostName real.example
Match host real.example,!other.example
    User matchuser
`)
	h.write(".ssh/conf.d/10-first.conf", "User first-included\nPort 2010\n")
	h.write(".ssh/conf.d/20-second.conf", "User second-included\nIdentitiesOnly yes\nHostName included.example\n")
	h.write(".ssh/conf.d/ignored.txt", "User ignored\n")
	h.write("etc-ssh/ssh_config", "Include ssh_config.d/*.conf\nHost *\n    Port 22\n")
	h.write("etc-ssh/ssh_config.d/00-system.conf", "Host system-only\n    User sysuser\n    Port 2345\n")

	defaults := resolved{IdentityFiles: []string{idDefault}, KnownHosts: defKnown}
	with := func(r resolved, user, host string, port int) resolved {
		r.User, r.Host, r.Port = user, host, port
		return r
	}
	bastion := remote.Hop{User: "alice", Host: "bastion.example", Port: 2022, IdentityFiles: []string{idJump},
		KnownHostsFile: defKnown[0], ExtraKnownHostsFiles: defKnown[1:]}

	tests := []struct {
		name  string
		flags remote.Config
		want  resolved
	}{
		{name: "alias", flags: remote.Config{Host: "node1"}, want: resolved{
			User: "deploy", Host: "10.0.0.11", Port: 2222, IdentityFiles: []string{idWork},
			KnownHosts: []string{filepath.Join(h.ssh, "fleet_hosts"), filepath.Join(h.ssh, "with space")}}},
		{name: "second alias on the Host line", flags: remote.Config{Host: "node1-alias"}, want: resolved{
			User: "deploy", Host: "10.0.0.11", Port: 2222, IdentityFiles: []string{idWork},
			KnownHosts: []string{filepath.Join(h.ssh, "fleet_hosts"), filepath.Join(h.ssh, "with space")}}},
		{name: "flags win over the file", flags: remote.Config{Host: "node1", User: "admin", Port: 22,
			IdentityFiles: []string{flagKey}, KnownHostsFile: "/flags/known_hosts"}, want: resolved{
			User: "admin", Host: "10.0.0.11", Port: 22, IdentityFiles: []string{flagKey, idWork},
			KnownHosts: []string{"/flags/known_hosts"}}},
		{name: "unknown name passes through with defaults", flags: remote.Config{Host: "node.example"},
			want: with(defaults, "root", "node.example", 22)},
		{name: "? matches one character", flags: remote.Config{Host: "pve7"}, want: resolved{
			User: "root", Host: "pve7.lab.example", Port: 22, IdentityFiles: []string{idLab}, IdentitiesOnly: true, KnownHosts: defKnown}},
		{name: "? does not match none", flags: remote.Config{Host: "pve"}, want: with(defaults, "root", "pve", 22)},
		{name: "? does not match two", flags: remote.Config{Host: "pve10"}, want: with(defaults, "root", "pve10", 22)},
		{name: "* pattern", flags: remote.Config{Host: "db.lab"}, want: with(defaults, "labuser", "db.lab", 2200)},
		{name: "!negation excludes", flags: remote.Config{Host: "secret.lab"}, want: with(defaults, "root", "secret.lab", 22)},
		{name: "tokens", flags: remote.Config{Host: "tokens"}, want: resolved{User: "tok", Host: "tokens.example", Port: 2022,
			IdentityFiles: nil, KnownHosts: defKnown}},
		{name: "ProxyJump through an alias", flags: remote.Config{Host: "jumped"}, want: resolved{
			User: "root", Host: "10.0.1.5", Port: 22, IdentityFiles: []string{idDefault}, KnownHosts: defKnown,
			Jumps: []remote.Hop{bastion}}},
		{name: "flag keys and IdentitiesOnly are for the target alone", flags: remote.Config{Host: "jumped",
			IdentityFiles: []string{flagKey}, IdentitiesOnly: true}, want: resolved{
			User: "root", Host: "10.0.1.5", Port: 22, IdentityFiles: []string{flagKey}, IdentitiesOnly: true, KnownHosts: defKnown,
			Jumps: []remote.Hop{bastion}}},
		{name: "ProxyJump chain; the last host's own ProxyJump yields to the list", flags: remote.Config{Host: "two-jumps"}, want: resolved{
			User: "root", Host: "two-jumps", Port: 22, IdentityFiles: []string{idDefault}, KnownHosts: defKnown,
			Jumps: []remote.Hop{
				bastion,
				{User: "deploy", Host: "10.0.9.9", Port: 2201, IdentityFiles: []string{idDefault}, KnownHostsFile: defKnown[0], ExtraKnownHostsFiles: defKnown[1:]},
			}}},
		{name: "ProxyJump of a jump host", flags: remote.Config{Host: "via-inner"}, want: resolved{
			User: "root", Host: "via-inner", Port: 22, IdentityFiles: []string{idDefault}, KnownHosts: defKnown,
			Jumps: []remote.Hop{
				bastion,
				{User: "alice", Host: "10.0.9.9", Port: 22, IdentityFiles: []string{idDefault}, KnownHostsFile: defKnown[0], ExtraKnownHostsFiles: defKnown[1:]},
			}}},
		{name: "ProxyJump URI with IPv6", flags: remote.Config{Host: "uri"}, want: resolved{
			User: "root", Host: "uri", Port: 22, IdentityFiles: []string{idDefault}, KnownHosts: defKnown,
			Jumps: []remote.Hop{{User: "carol", Host: "2001:db8::1", Port: 2200, IdentityFiles: []string{idDefault},
				KnownHostsFile: defKnown[0], ExtraKnownHostsFiles: defKnown[1:]}}}},
		{name: "ProxyJump none", flags: remote.Config{Host: "nojump"}, want: with(defaults, "root", "nojump", 22)},
		{name: "flags' known_hosts serve the jump hosts too", flags: remote.Config{Host: "jumped", KnownHostsFile: "/kh"}, want: resolved{
			User: "root", Host: "10.0.1.5", Port: 22, IdentityFiles: []string{idDefault}, KnownHosts: []string{"/kh"},
			Jumps: []remote.Hop{{User: "alice", Host: "bastion.example", Port: 2022, IdentityFiles: []string{idJump}, KnownHostsFile: "/kh", ExtraKnownHostsFiles: []string{}}}}},
		{name: "Include inside a Host block, files in name order", flags: remote.Config{Host: "include-here"}, want: resolved{
			User: "first-included", Host: "included.example", Port: 2010, IdentityFiles: []string{idDefault}, IdentitiesOnly: true, KnownHosts: defKnown}},
		{name: "Match host sees HostName", flags: remote.Config{Host: "matched"}, want: with(defaults, "matchuser", "real.example", 22)},
		{name: "system file after the user's, with its own Include directory", flags: remote.Config{Host: "system-only"},
			want: with(defaults, "sysuser", "system-only", 2345)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := h.resolve(tt.flags)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if p := project(got); !reflect.DeepEqual(p, tt.want) {
				t.Errorf("Resolve(%q):\n got %+v\nwant %+v", tt.flags.Host, p, tt.want)
			}
		})
	}

	t.Run("token expansion", func(t *testing.T) {
		// The file the tokens name must exist to be used.
		want := h.write(fmt.Sprintf(".ssh/tok@tokens.example:2022-tokens-alice-%s-100%%", uid), "key")
		got, err := h.resolve(remote.Config{Host: "tokens"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.IdentityFiles) != 1 || got.IdentityFiles[0] != want {
			t.Errorf("IdentityFiles = %q, want [%q]", got.IdentityFiles, want)
		}
	})

	t.Run("other settings pass through", func(t *testing.T) {
		flags := remote.Config{Host: "node1", UseAgent: true, AgentSocket: "/agent", InsecureIgnoreHostKey: true, Timeout: 7}
		got, err := h.resolve(flags)
		if err != nil {
			t.Fatal(err)
		}
		if !got.UseAgent || got.AgentSocket != "/agent" || !got.InsecureIgnoreHostKey || got.Timeout != 7 {
			t.Errorf("Resolve lost settings: %+v", got)
		}
	})
}

func TestSSHConfigResolveErrors(t *testing.T) {
	tests := []struct {
		name   string
		config string
		host   string
		want   []string // in the message
	}{
		{name: "bad port", config: "Host x\n  Port http\n", host: "x", want: []string{"config:2:", `Port "http"`}},
		{name: "unknown token", config: "Host x\n  IdentityFile ~/.ssh/%C\n", host: "x", want: []string{"config:2:", "%C"}},
		{name: "environment variable", config: "Host x\n  IdentityFile ${HOME}/.ssh/id\n", host: "x", want: []string{"config:2:", "environment"}},
		{name: "~user", config: "Host x\n  UserKnownHostsFile ~bob/.ssh/known_hosts\n", host: "x", want: []string{"config:2:", "~user"}},
		{name: "IdentitiesOnly not yes or no", config: "Host x\n  IdentitiesOnly maybe\n", host: "x", want: []string{"config:2:", "yes or no"}},
		{name: "ProxyCommand", config: "Host x\n  ProxyCommand nc %h %p\n", host: "x", want: []string{"config:2:", "ProxyCommand is not supported"}},
		{name: "ProxyJump loop", config: "Host *\n  ProxyJump bastion\n", host: "x", want: []string{"bastion has itself as ProxyJump", "Host * !bastion"}},
		{name: "ProxyJump cycle", config: "Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n", host: "a", want: []string{"longer than"}},
		{name: "bad ProxyJump port", config: "Host x\n  ProxyJump j:99999\n", host: "x", want: []string{"bad port"}},
		{name: "Match with two criteria", config: "Match host a user b\n  Port 1\n", host: "a", want: []string{"single criterion"}},
		{name: "Match exec", config: "Host a\nMatch exec true\n", host: "a", want: []string{"config:2:", "Exec is not supported"}},
		{name: "Include of itself", config: "Include config\n", host: "a", want: []string{"Include nested more than 16"}},
		{name: "Include of nothing", config: "Include\n", host: "a", want: []string{"config:1:", "Include names no file"}},
		{name: "unterminated quote", config: "Host x\n  IdentityFile \"~/.ssh/id\n", host: "x", want: []string{"config:2:", "unterminated quote"}},
		{name: "two arguments to HostName", config: "Host x\n  HostName a b\n", host: "x", want: []string{"config:2:", "HostName takes one argument"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newSSHHome(t)
			h.write(".ssh/config", tt.config)
			_, err := h.resolve(remote.Config{Host: tt.host})
			if err == nil {
				t.Fatal("Resolve succeeded")
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
}

func TestReadSSHConfigFiles(t *testing.T) {
	h := newSSHHome(t)
	t.Run("missing default files read as empty", func(t *testing.T) {
		got, err := h.resolve(remote.Config{Host: "node"})
		if err != nil {
			t.Fatal(err)
		}
		if got.User != "root" || got.Host != "node" || got.Port != 22 {
			t.Errorf("Resolve = %+v", project(got))
		}
	})
	t.Run("a named file must exist", func(t *testing.T) {
		opts := h.opts
		opts.UserFile, opts.SystemFile, opts.MissingOK = filepath.Join(h.dir, "nope"), "", false
		_, err := remote.ReadSSHConfig(opts)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadSSHConfig of a missing file: %v", err)
		}
	})
	t.Run("a named file replaces the default ones", func(t *testing.T) {
		h.write(".ssh/config", "Host node\n  User from-default\n")
		named := h.write("named.conf", "Host node\n  Port 2022\n  Include ~/extra.conf\n")
		h.write("extra.conf", "User from-include\n")
		opts := h.opts
		opts.UserFile, opts.SystemFile, opts.MissingOK = named, "", false
		sc, err := remote.ReadSSHConfig(opts)
		if err != nil {
			t.Fatal(err)
		}
		got, err := sc.Resolve(remote.Config{Host: "node"})
		if err != nil {
			t.Fatal(err)
		}
		if got.User != "from-include" || got.Port != 2022 {
			t.Errorf("Resolve = %+v", project(got))
		}
	})
	t.Run("Include outside the matching block does not apply", func(t *testing.T) {
		h.write(".ssh/config", "Host other\n  Include extra.conf\nHost node\n  Port 2\n")
		h.write(".ssh/extra.conf", "User included\n")
		got, err := h.resolve(remote.Config{Host: "node"})
		if err != nil {
			t.Fatal(err)
		}
		if got.User != "root" || got.Port != 2 {
			t.Errorf("Resolve = %+v", project(got))
		}
	})
	t.Run("Host lines in an included file", func(t *testing.T) {
		h.write(".ssh/config", "Include hosts.conf\nHost *\n  User fallback\n")
		h.write(".ssh/hosts.conf", "Host node\n  User node-user\nHost other\n  User other-user\n")
		for host, want := range map[string]string{"node": "node-user", "other": "other-user", "third": "fallback"} {
			got, err := h.resolve(remote.Config{Host: host})
			if err != nil {
				t.Fatal(err)
			}
			if got.User != want {
				t.Errorf("Resolve(%s).User = %q, want %q", host, got.User, want)
			}
		}
	})
	t.Run("Match all and negated Match host", func(t *testing.T) {
		h.write(".ssh/config", "Match host !*.internal,*\n  User outside\nMatch all\n  User everyone\n  Port 2999\n")
		for host, want := range map[string]string{"a.internal": "everyone", "a.example": "outside"} {
			got, err := h.resolve(remote.Config{Host: host})
			if err != nil {
				t.Fatal(err)
			}
			if got.User != want || got.Port != 2999 {
				t.Errorf("Resolve(%s) = %s port %d, want %s port 2999", host, got.User, got.Port, want)
			}
		}
	})
	t.Run("Debian's default system file", func(t *testing.T) {
		h := newSSHHome(t)
		h.write("etc-ssh/ssh_config.d/local.conf", "Host debian-node\n  User from-dropin\n")
		h.write("etc-ssh/ssh_config", `
# This is the ssh client system-wide configuration file.  See
# ssh_config(5) for more information.

Include `+h.etc+`/ssh_config.d/*.conf

Host *
#   ForwardAgent no
#   StrictHostKeyChecking ask
#   IdentityFile ~/.ssh/id_rsa
#   Port 22
#   ProxyCommand ssh -q -W %h:%p gateway.example.com
#   UserKnownHostsFile ~/.ssh/known_hosts.d/%k
    SendEnv LANG LC_*
    HashKnownHosts yes
    GSSAPIAuthentication yes
`)
		for host, want := range map[string]string{"debian-node": "from-dropin", "other": "root"} {
			got, err := h.resolve(remote.Config{Host: host})
			if err != nil {
				t.Fatal(err)
			}
			if got.User != want || got.Port != 22 || len(got.Jumps) != 0 {
				t.Errorf("Resolve(%s) = %+v", host, project(got))
			}
		}
	})
	t.Run("options", func(t *testing.T) {
		for _, opts := range []remote.SSHConfigOptions{{Home: "relative", LocalUser: "a"}, {Home: "/home/a"}} {
			if _, err := remote.ReadSSHConfig(opts); err == nil {
				t.Errorf("ReadSSHConfig(%+v) accepted", opts)
			}
		}
	})
}
