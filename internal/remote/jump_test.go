package remote_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/vmatool/vmatool/internal/remote"
	"github.com/vmatool/vmatool/internal/remote/sshtest"
)

// jumpSetup is a node reachable through a jump host, and a home
// directory whose ~/.ssh/config reaches it as "pve1" the way an OpenSSH
// user sets that up: the jump host in an included file, ProxyJump for
// every host but the jump host, keys and known_hosts under ~/.ssh.
type jumpSetup struct {
	target, jump *sshtest.Server
	home         *sshHome
	knownHosts   string
}

func newJumpSetup(t *testing.T) *jumpSetup {
	t.Helper()
	s := &jumpSetup{target: sshtest.Start(t), home: newSSHHome(t)}
	s.jump = sshtest.StartJump(t, s.target.Addr)
	// Each stand-in says which server ran it.
	s.target.AddCommand(t, "which-node", "echo target")
	s.jump.AddCommand(t, "which-node", "echo jump")
	s.home.write(".ssh/pve_key", readFile(t, s.target.ClientKeyFile))
	s.home.write(".ssh/bastion_key", readFile(t, s.jump.ClientKeyFile))
	s.knownHosts = s.home.write(".ssh/known_hosts", s.target.KnownHostsLine+"\n"+s.jump.KnownHostsLine+"\n")
	s.home.write(".ssh/config", fmt.Sprintf(`Include hosts.d/*.conf

Host pve*
    HostName 127.0.0.1
    Port %d
    IdentityFile ~/.ssh/pve_key
    IdentitiesOnly yes

Host * !bastion
    ProxyJump bastion
    User %s
`, s.target.Port, s.target.User))
	s.home.write(".ssh/hosts.d/bastion.conf", fmt.Sprintf(`Host bastion
    HostName 127.0.0.1
    Port %d
    User %s
    IdentityFile %%d/.ssh/bastion_key
`, s.jump.Port, s.jump.User))
	return s
}

// config resolves host through the home directory's ssh config.
func (s *jumpSetup) config(t *testing.T, flags remote.Config) remote.Config {
	t.Helper()
	if flags.Timeout == 0 {
		flags.Timeout = 10 * time.Second
	}
	cfg, err := s.home.resolve(flags)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	return cfg
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func fingerprint(t *testing.T, keyFile string) string {
	t.Helper()
	s, err := ssh.ParsePrivateKey([]byte(readFile(t, keyFile)))
	if err != nil {
		t.Fatal(err)
	}
	return ssh.FingerprintSHA256(s.PublicKey())
}

func output(t *testing.T, c *remote.Client, cmd ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := c.Run(context.Background(), cmd, nil, &out, nil); err != nil {
		t.Fatalf("Run %q: %v", cmd, err)
	}
	return strings.TrimSpace(out.String())
}

func TestDialSSHConfigThroughJump(t *testing.T) {
	s := newJumpSetup(t)
	cfg := s.config(t, remote.Config{Host: "pve1"})
	c := dial(t, cfg)

	if got := output(t, c, "which-node"); got != "target" {
		t.Errorf("command ran on %q, want the target", got)
	}
	// SSH_CONNECTION is "client-ip client-port server-ip server-port" as
	// the target saw the TCP connection.
	conn := strings.Fields(output(t, c, "sh", "-c", `echo "$SSH_CONNECTION"`))
	if len(conn) != 4 || conn[3] != strconv.Itoa(s.target.Port) {
		t.Fatalf("SSH_CONNECTION = %q", conn)
	}
	srcPort, _ := strconv.Atoi(conn[1])
	if !s.jump.Dialed(srcPort) {
		t.Errorf("the target's connection (from port %d) was not made by the jump host's sshd", srcPort)
	}
	if got := s.jump.Forwards(); !slices.Equal(got, []string{s.target.Addr}) {
		t.Errorf("jump host forwarded to %q, want [%s]", got, s.target.Addr)
	}
	// IdentitiesOnly: each host saw only the key configured for it.
	if got, want := s.target.KeysOffered(), []string{fingerprint(t, s.target.ClientKeyFile)}; !slices.Equal(got, want) {
		t.Errorf("target was offered %q, want %q", got, want)
	}
	if got, want := s.jump.KeysOffered(), []string{fingerprint(t, s.jump.ClientKeyFile)}; !slices.Equal(got, want) {
		t.Errorf("jump host was offered %q, want %q", got, want)
	}

	// Uploads work through the tunnel too.
	dir := t.TempDir()
	payload := bytes.Repeat([]byte("through the jump host\n"), 50000)
	if err := c.Upload(context.Background(), bytes.NewReader(payload), dir, "up.bin", nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "up.bin")); !bytes.Equal(got, payload) {
		t.Errorf("uploaded %d bytes, %d arrived", len(payload), len(got))
	}

	// Closing the client closes the jump connection too.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.jump.Dialed(srcPort) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if s.jump.Dialed(srcPort) {
		t.Errorf("the jump host still holds the forward after Close")
	}
}

func TestDialJumpHostKeys(t *testing.T) {
	_, otherKey := newKeyFile(t, "")
	line := func(srv *sshtest.Server, key ssh.PublicKey) string {
		return knownhosts.Line([]string{knownhosts.Normalize(srv.Addr)}, key)
	}
	tests := []struct {
		name       string
		knownHosts func(s *jumpSetup) string
		insecure   bool
		wantErr    error
		wantAt     func(s *jumpSetup) *sshtest.Server // whose key was refused
		wantReach  bool                               // did the jump host forward to the target?
	}{
		{name: "unknown jump host", knownHosts: func(s *jumpSetup) string { return s.target.KnownHostsLine },
			wantErr: remote.ErrUnknownHost, wantAt: func(s *jumpSetup) *sshtest.Server { return s.jump }},
		{name: "changed jump host", knownHosts: func(s *jumpSetup) string {
			return s.target.KnownHostsLine + "\n" + line(s.jump, otherKey)
		}, wantErr: remote.ErrHostKeyMismatch, wantAt: func(s *jumpSetup) *sshtest.Server { return s.jump }},
		{name: "unknown target", knownHosts: func(s *jumpSetup) string { return s.jump.KnownHostsLine },
			wantErr: remote.ErrUnknownHost, wantAt: func(s *jumpSetup) *sshtest.Server { return s.target }, wantReach: true},
		{name: "changed target", knownHosts: func(s *jumpSetup) string {
			return s.jump.KnownHostsLine + "\n" + line(s.target, otherKey)
		}, wantErr: remote.ErrHostKeyMismatch, wantAt: func(s *jumpSetup) *sshtest.Server { return s.target }, wantReach: true},
		{name: "insecure does not cover the jump host", knownHosts: func(s *jumpSetup) string { return s.target.KnownHostsLine },
			insecure: true, wantErr: remote.ErrUnknownHost, wantAt: func(s *jumpSetup) *sshtest.Server { return s.jump }},
		{name: "insecure covers the target", knownHosts: func(s *jumpSetup) string { return s.jump.KnownHostsLine },
			insecure: true, wantReach: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newJumpSetup(t)
			s.home.write(".ssh/known_hosts", tt.knownHosts(s)+"\n")
			cfg := s.config(t, remote.Config{Host: "pve1", InsecureIgnoreHostKey: tt.insecure})
			c, err := remote.Dial(context.Background(), cfg)
			if err == nil {
				t.Cleanup(func() { c.Close() })
			}
			if reached := len(s.jump.Forwards()) > 0; reached != tt.wantReach {
				t.Errorf("jump host forwarded: %v, want %v", reached, tt.wantReach)
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				if got := output(t, c, "which-node"); got != "target" {
					t.Errorf("command ran on %q", got)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Dial error = %v, want %v", err, tt.wantErr)
			}
			var hk *remote.HostKeyError
			if !errors.As(err, &hk) {
				t.Fatalf("error %T is not a *HostKeyError: %v", err, err)
			}
			at := tt.wantAt(s)
			if hk.Host != at.Addr || !bytes.Equal(hk.Key.Marshal(), at.HostKey.Marshal()) || hk.KnownHostsFile != s.knownHosts {
				t.Errorf("HostKeyError names %s (key %s, file %s), want %s (key %s, file %s)",
					hk.Host, hk.Fingerprint(), hk.KnownHostsFile, at.Addr, ssh.FingerprintSHA256(at.HostKey), s.knownHosts)
			}
			// No one logged in to the host whose key was refused.
			if got := at.KeysOffered(); len(got) != 0 {
				t.Errorf("%s was offered keys %q after its host key was refused", at.Addr, got)
			}
		})
	}
}

func TestDialJumpChain(t *testing.T) {
	target := sshtest.Start(t)
	inner := sshtest.StartJump(t, target.Addr)
	outer := sshtest.StartJump(t, inner.Addr)
	target.AddCommand(t, "which-node", "echo target")
	h := newSSHHome(t)
	h.write(".ssh/known_hosts", target.KnownHostsLine+"\n"+inner.KnownHostsLine+"\n"+outer.KnownHostsLine+"\n")
	hostBlock := func(name string, srv *sshtest.Server, extra string) string {
		return fmt.Sprintf("Host %s\n  HostName %s\n  Port %d\n  User %s\n  IdentityFile %s\n%s", name, srv.Host, srv.Port, srv.User, srv.ClientKeyFile, extra)
	}
	tests := []struct {
		name, config string
	}{
		{"comma-separated list", hostBlock("pve", target, "  ProxyJump outer,inner\n") +
			hostBlock("inner", inner, "") + hostBlock("outer", outer, "")},
		{"a jump host's own ProxyJump", hostBlock("pve", target, "  ProxyJump inner\n") +
			hostBlock("inner", inner, "  ProxyJump outer\n") + hostBlock("outer", outer, "")},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.write(".ssh/config", tt.config)
			cfg, err := h.resolve(remote.Config{Host: "pve", Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			c := dial(t, cfg)
			if got := output(t, c, "which-node"); got != "target" {
				t.Errorf("command ran on %q", got)
			}
			// Each run adds one forward at each jump host.
			if got := outer.Forwards(); len(got) != i+1 || got[i] != inner.Addr {
				t.Errorf("outer jump host forwarded to %q, want %s last", got, inner.Addr)
			}
			if got := inner.Forwards(); len(got) != i+1 || got[i] != target.Addr {
				t.Errorf("inner jump host forwarded to %q, want %s last", got, target.Addr)
			}
		})
	}
}

func TestDialSSHConfigFlagsWin(t *testing.T) {
	srv := sshtest.Start(t)
	h := newSSHHome(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	h.write(".ssh/config", fmt.Sprintf("Host node\n  HostName 127.0.0.1\n  Port %d\n  User nobody-here\n  IdentityFile %s\n",
		closedPort, srv.ClientKeyFile))
	h.write(".ssh/known_hosts", srv.KnownHostsLine+"\n")

	// The file alone points at a closed port.
	cfg, err := h.resolve(remote.Config{Host: "node", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Dial(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), strconv.Itoa(closedPort)) {
		t.Fatalf("Dial with the file's port: %v", err)
	}
	// Port and user from flags; the rest (address, key) from the file.
	cfg, err = h.resolve(remote.Config{Host: "node", Port: srv.Port, User: srv.User, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, cfg)
	if got := output(t, c, "id", "-un"); got != srv.User {
		t.Errorf("logged in as %q, want %q", got, srv.User)
	}
}

// startAgent serves an in-process ssh-agent holding keys and returns its
// socket.
func startAgent(t *testing.T, keys ...any) string {
	t.Helper()
	keyring := agent.NewKeyring()
	for _, k := range keys {
		if err := keyring.Add(agent.AddedKey{PrivateKey: k}); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { agent.ServeAgent(keyring, c); c.Close() }()
		}
	}()
	return sock
}

func TestDialIdentitiesOnly(t *testing.T) {
	authKey, authPub := newKeyFile(t, "")
	wrongKey, wrongPub := newKeyFile(t, "")
	otherKey, otherPub := newKeyFile(t, "")
	lockedKey, lockedPub := newKeyFile(t, "sesame")
	lostKey, _ := newKeyFile(t, "sesame") // encrypted, and not in the agent
	// The agent holds an authorized key, an unauthorized one, and the
	// decrypted form of lockedKey, also authorized.
	locked, err := ssh.ParseRawPrivateKeyWithPassphrase([]byte(readFile(t, lockedKey)), []byte("sesame"))
	if err != nil {
		t.Fatal(err)
	}
	sock := startAgent(t, mustParseRaw(t, authKey), mustParseRaw(t, otherKey), locked)
	authorized := ssh.FingerprintSHA256(authPub)

	tests := []struct {
		name        string
		config      string
		wantErr     []error
		wantOffered []string
	}{
		{name: "IdentitiesOnly yes: only the named key, which is wrong",
			config: "IdentityFile " + wrongKey + "\nIdentitiesOnly yes\n", wantErr: []error{remote.ErrAuth},
			wantOffered: []string{ssh.FingerprintSHA256(wrongPub)}},
		{name: "IdentitiesOnly no: the named key, then the agent's",
			config:      "IdentityFile " + wrongKey + "\nIdentitiesOnly no\n",
			wantOffered: []string{ssh.FingerprintSHA256(wrongPub), authorized}},
		{name: "IdentitiesOnly yes: an encrypted file the agent signs for",
			config:      "IdentityFile " + lockedKey + "\nIdentitiesOnly yes\n",
			wantOffered: []string{ssh.FingerprintSHA256(lockedPub)}},
		{name: "IdentitiesOnly yes: the named key among the agent's",
			config:      "IdentityFile " + otherKey + "\nIdentityFile " + authKey + "\nIdentitiesOnly yes\n",
			wantOffered: []string{ssh.FingerprintSHA256(otherPub), authorized}},
		{name: "IdentitiesOnly yes: an encrypted key the agent lacks, alone",
			config: "IdentityFile " + lostKey + "\nIdentitiesOnly yes\n", wantErr: []error{remote.ErrEncryptedKey}},
		{name: "IdentitiesOnly yes: an encrypted key the agent lacks, and a wrong one",
			config:  "IdentityFile " + lostKey + "\nIdentityFile " + wrongKey + "\nIdentitiesOnly yes\n",
			wantErr: []error{remote.ErrAuth, remote.ErrEncryptedKey}, wantOffered: []string{ssh.FingerprintSHA256(wrongPub)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A fresh server each time, so its log shows only this login.
			srv := sshtest.Start(t)
			srv.AuthorizeKey(t, authPub)
			srv.AuthorizeKey(t, lockedPub)
			h := newSSHHome(t)
			h.write(".ssh/config", fmt.Sprintf("Host node\n  HostName %s\n  Port %d\n  User %s\n  UserKnownHostsFile %s\n%s",
				srv.Host, srv.Port, srv.User, srv.KnownHostsFile, tt.config))
			cfg, err := h.resolve(remote.Config{Host: "node", UseAgent: true, AgentSocket: sock, Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			c, err := remote.Dial(context.Background(), cfg)
			if err == nil {
				c.Close()
			}
			for _, want := range tt.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("Dial error = %v, want %v", err, want)
				}
			}
			if len(tt.wantErr) == 0 && err != nil {
				t.Fatalf("Dial: %v", err)
			}
			if got := srv.KeysOffered(); !slices.Equal(got, tt.wantOffered) {
				t.Errorf("server was offered %q, want %q", got, tt.wantOffered)
			}
		})
	}
}

func TestDialJumpFailures(t *testing.T) {
	// A target that accepts and then says nothing: the handshake through
	// the jump host hangs until the context ends it.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	elsewhere := sshtest.Start(t) // not a target the jump host forwards to
	jump := sshtest.StartJump(t, silent.Addr().String())
	jc := jump.Config()
	hop := remote.Hop{User: jc.User, Host: jc.Host, Port: jc.Port, IdentityFiles: jc.IdentityFiles, KnownHostsFile: jc.KnownHostsFile}
	keyFile, _ := newKeyFile(t, "")

	t.Run("context ends a handshake behind the jump host", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := remote.Dial(ctx, remote.Config{
			User: "root", Host: "127.0.0.1", Port: silent.Addr().(*net.TCPAddr).Port,
			IdentityFiles: []string{keyFile}, InsecureIgnoreHostKey: true, Jumps: []remote.Hop{hop},
		})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Dial error = %v, want deadline exceeded", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Dial took %v after its context ended", d)
		}
		if got := jump.Forwards(); !slices.Equal(got, []string{silent.Addr().String()}) {
			t.Errorf("jump host forwarded to %q", got)
		}
	})
	t.Run("jump host refuses the forward", func(t *testing.T) {
		cfg := elsewhere.Config()
		cfg.Jumps = []remote.Hop{hop}
		_, err := remote.Dial(context.Background(), cfg)
		for _, want := range []string{"jump host " + jump.Addr + " could not connect to " + elsewhere.Addr, "prohibited"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Dial error = %v, want it to say %q", err, want)
			}
		}
		if got := elsewhere.KeysOffered(); len(got) != 0 {
			t.Errorf("the target was reached anyway: offered %q", got)
		}
	})
	t.Run("refused login at the jump host", func(t *testing.T) {
		bad := hop
		bad.IdentityFiles = []string{keyFile}
		cfg := elsewhere.Config()
		cfg.Jumps = []remote.Hop{bad}
		_, err := remote.Dial(context.Background(), cfg)
		if !errors.Is(err, remote.ErrAuth) || !strings.Contains(err.Error(), "jump host 1 ("+jump.Addr+")") {
			t.Errorf("Dial error = %v, want ErrAuth naming jump host 1", err)
		}
	})
	t.Run("a jump host needs a known_hosts file", func(t *testing.T) {
		bad := hop
		bad.KnownHostsFile = ""
		cfg := elsewhere.Config()
		cfg.Jumps = []remote.Hop{bad}
		cfg.InsecureIgnoreHostKey = true
		if _, err := remote.Dial(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "always checked") {
			t.Errorf("Dial error = %v", err)
		}
	})
}
