package remote_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/vmatool/vmatool/internal/remote"
	"github.com/vmatool/vmatool/internal/remote/sshtest"
)

func dial(t *testing.T, cfg remote.Config) *remote.Client {
	t.Helper()
	c, err := remote.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// newKeyFile writes a fresh ed25519 key, encrypted when passphrase is set.
func newKeyFile(t *testing.T, passphrase string) (string, ssh.PublicKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	pub, _ := ssh.NewPublicKey(priv.Public())
	return p, pub
}

func writeKnownHosts(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDialHostKey(t *testing.T) {
	srv := sshtest.Start(t)
	_, otherKey := newKeyFile(t, "")
	pattern := knownhosts.Normalize(srv.Addr)
	authorizedKey := func(k ssh.PublicKey) string { return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) }
	hostKey, caKey, otherLine := authorizedKey(srv.HostKey), authorizedKey(srv.HostCA), authorizedKey(otherKey)
	tests := []struct {
		name       string
		knownHosts string // file content; "-" for a file that does not exist
		insecure   bool
		wantErr    error
		wantInMsg  []string
	}{
		{name: "known", knownHosts: srv.KnownHostsLine + "\n"},
		{name: "known among others", knownHosts: "# comment\nother.example " +
			strings.TrimSpace(string(ssh.MarshalAuthorizedKey(otherKey))) + "\n" + srv.KnownHostsLine + "\n"},
		{name: "unknown, empty file", knownHosts: "", wantErr: remote.ErrUnknownHost,
			wantInMsg: []string{"ssh-keyscan -p " + srv.Addr[strings.LastIndex(srv.Addr, ":")+1:], ssh.FingerprintSHA256(srv.HostKey)}},
		{name: "unknown, missing file", knownHosts: "-", wantErr: remote.ErrUnknownHost},
		{name: "changed", knownHosts: knownhosts.Line([]string{pattern}, otherKey) + "\n",
			wantErr: remote.ErrHostKeyMismatch, wantInMsg: []string{"CHANGED", "ssh-keygen", "-R", ssh.FingerprintSHA256(srv.HostKey)}},
		{name: "revoked", knownHosts: "@revoked * " + string(ssh.MarshalAuthorizedKey(srv.HostKey)) + srv.KnownHostsLine + "\n",
			wantErr: remote.ErrHostKeyRevoked},
		{name: "insecure ignores a changed key", knownHosts: knownhosts.Line([]string{pattern}, otherKey) + "\n", insecure: true},
		{name: "hashed, with the port", knownHosts: knownhosts.HashHostname(pattern) + " " + hostKey},
		{name: "hashed, without the port", knownHosts: knownhosts.HashHostname(srv.Host) + " " + hostKey, wantErr: remote.ErrUnknownHost},
		{name: "plain, without the port", knownHosts: srv.Host + " " + hostKey, wantErr: remote.ErrUnknownHost},
		{name: "hashed among others", knownHosts: knownhosts.HashHostname("[other.example]:22") + " " + otherLine + "\n" +
			knownhosts.HashHostname(pattern) + " " + hostKey},
		{name: "hashed, changed", knownHosts: knownhosts.HashHostname(pattern) + " " + otherLine, wantErr: remote.ErrHostKeyMismatch},
		{name: "@cert-authority for [host]:port", knownHosts: "@cert-authority " + pattern + " " + caKey},
		{name: "@cert-authority for *", knownHosts: "@cert-authority * " + caKey},
		{name: "@cert-authority, hashed", knownHosts: "@cert-authority " + knownhosts.HashHostname(pattern) + " " + caKey},
		{name: "@cert-authority for a pattern list with the host", knownHosts: "@cert-authority other.example,[127.0.0.?]:* " + caKey},
		{name: "@cert-authority negated for the host", knownHosts: "@cert-authority *,!" + pattern + " " + caKey, wantErr: remote.ErrUnknownHost},
		{name: "@cert-authority for another host", knownHosts: "@cert-authority other.example " + caKey, wantErr: remote.ErrUnknownHost},
		{name: "@cert-authority of another CA", knownHosts: "@cert-authority * " + otherLine, wantErr: remote.ErrUnknownHost},
		{name: "@cert-authority of another CA, plain key known", knownHosts: "@cert-authority * " + otherLine + "\n" + srv.KnownHostsLine},
		{name: "@cert-authority, plain key changed", knownHosts: "@cert-authority * " + caKey + "\n" + knownhosts.Line([]string{pattern}, otherKey)},
		{name: "@cert-authority, CA revoked", knownHosts: "@cert-authority * " + caKey + "\n@revoked * " + caKey, wantErr: remote.ErrHostKeyRevoked},
		{name: "@cert-authority, host key revoked", knownHosts: "@cert-authority * " + caKey + "\n@revoked * " + hostKey, wantErr: remote.ErrHostKeyRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := srv.Config()
			cfg.KnownHostsFile = filepath.Join(t.TempDir(), "absent")
			if tt.knownHosts != "-" {
				cfg.KnownHostsFile = writeKnownHosts(t, tt.knownHosts)
			}
			cfg.InsecureIgnoreHostKey = tt.insecure
			c, err := remote.Dial(context.Background(), cfg)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				c.Close()
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Dial error = %v, want %v", err, tt.wantErr)
			}
			var hk *remote.HostKeyError
			if !errors.As(err, &hk) {
				t.Fatalf("error %T is not a *HostKeyError", err)
			}
			if hk.Line() != knownhosts.Line([]string{pattern}, srv.HostKey) {
				t.Errorf("Line() = %q", hk.Line())
			}
			for _, s := range tt.wantInMsg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("message lacks %q: %v", s, err)
				}
			}
		})
	}
}

func TestDialAuth(t *testing.T) {
	srv := sshtest.Start(t)
	wrongKey, _ := newKeyFile(t, "")
	encrypted, _ := newKeyFile(t, "sesame")

	// An in-process agent holding the authorized key.
	sock := startAgent(t, mustParseRaw(t, srv.ClientKeyFile))

	tests := []struct {
		name    string
		edit    func(*remote.Config)
		wantErr error
	}{
		{name: "key file", edit: func(*remote.Config) {}},
		{name: "wrong key", edit: func(c *remote.Config) { c.IdentityFiles = []string{wrongKey} }, wantErr: remote.ErrAuth},
		{name: "wrong key then right key", edit: func(c *remote.Config) {
			c.IdentityFiles = []string{wrongKey, srv.ClientKeyFile}
		}},
		{name: "no key at all", edit: func(c *remote.Config) { c.IdentityFiles = nil }, wantErr: remote.ErrAuth},
		{name: "encrypted without passphrase", edit: func(c *remote.Config) { c.IdentityFiles = []string{encrypted} },
			wantErr: remote.ErrEncryptedKey},
		{name: "encrypted with wrong passphrase", edit: func(c *remote.Config) {
			c.IdentityFiles = []string{encrypted}
			c.Passphrase = func(string) ([]byte, error) { return []byte("wrong"), nil }
		}, wantErr: remote.ErrEncryptedKey},
		{name: "encrypted with passphrase, but not authorized", edit: func(c *remote.Config) {
			c.IdentityFiles = []string{encrypted}
			c.Passphrase = func(string) ([]byte, error) { return []byte("sesame"), nil }
		}, wantErr: remote.ErrAuth},
		{name: "agent", edit: func(c *remote.Config) {
			c.IdentityFiles = nil
			c.UseAgent, c.AgentSocket = true, sock
		}},
		{name: "wrong key file, agent has the right one", edit: func(c *remote.Config) {
			c.IdentityFiles = []string{wrongKey}
			c.UseAgent, c.AgentSocket = true, sock
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := srv.Config()
			tt.edit(&cfg)
			c, err := remote.Dial(context.Background(), cfg)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				c.Close()
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Dial error = %v, want %v", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "sesame") || strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
}

func mustParseRaw(t *testing.T, file string) any {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.ParseRawPrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestDialCancelled(t *testing.T) {
	// A listener that accepts and then says nothing: the handshake hangs
	// until the context ends it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	keyFile, _ := newKeyFile(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = remote.Dial(ctx, remote.Config{
		User: "root", Host: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port,
		IdentityFiles: []string{keyFile}, InsecureIgnoreHostKey: true,
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial error = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Dial took %v after its context ended", d)
	}
}

func TestRun(t *testing.T) {
	srv := sshtest.Start(t)
	c := dial(t, srv.Config())
	ctx := context.Background()

	t.Run("arguments arrive literally", func(t *testing.T) {
		var out bytes.Buffer
		cmd := append([]string{"printf", `%s\0`}, hostile...)
		if err := c.Run(ctx, cmd, nil, &out, nil); err != nil {
			t.Fatal(err)
		}
		got := strings.Split(out.String(), "\x00")
		got = got[:len(got)-1]
		if !slices.Equal(got, hostile) {
			t.Errorf("remote saw %q", got)
		}
		if _, err := os.Stat(filepath.Join(os.Getenv("HOME"), "pwned")); err == nil {
			t.Errorf("an argument ran as a command")
		}
	})

	t.Run("stdin and stdout", func(t *testing.T) {
		var out bytes.Buffer
		in := strings.NewReader("hello\nworld\n")
		if err := c.Run(ctx, []string{"wc", "-l"}, in, &out, nil); err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(out.String()) != "2" {
			t.Errorf("wc -l said %q", out.String())
		}
	})

	t.Run("exit status and stderr tail", func(t *testing.T) {
		var stderr bytes.Buffer
		script := `i=0; while [ $i -lt 2000 ]; do echo "noise $i" >&2; i=$((i+1)); done; echo "qmrestore: unable to restore VM 100" >&2; exit 3`
		err := c.Run(ctx, []string{"sh", "-c", script}, nil, nil, &stderr)
		var exitErr *remote.ExitError
		if !errors.As(err, &exitErr) {
			t.Fatalf("err = %v, want *ExitError", err)
		}
		if exitErr.Status != 3 || exitErr.Command != "sh" {
			t.Errorf("ExitError = %+v", exitErr)
		}
		if !strings.HasSuffix(strings.TrimSpace(exitErr.Stderr), "unable to restore VM 100") || len(exitErr.Stderr) > 4096 {
			t.Errorf("stderr tail = %d bytes ending %q", len(exitErr.Stderr), exitErr.Stderr[max(0, len(exitErr.Stderr)-60):])
		}
		if !strings.Contains(err.Error(), "status 3") || !strings.Contains(err.Error(), "unable to restore VM 100") {
			t.Errorf("message = %q", err)
		}
		if !strings.Contains(stderr.String(), "noise 0\n") {
			t.Errorf("caller's stderr missed the start of the output")
		}
	})

	t.Run("stand-in command on PATH", func(t *testing.T) {
		dir := t.TempDir()
		srv.AddCommand(t, "qmrestore", `printf '%s\n' "$@" > `+remote.ShellQuote(dir+"/args")+`
cat > `+remote.ShellQuote(dir+"/stdin")+`
echo "restored" >&2`)
		in := strings.NewReader("VMA archive bytes")
		if err := c.Run(ctx, []string{"qmrestore", "-", "100", "--storage", "local-lvm"}, in, nil, nil); err != nil {
			t.Fatal(err)
		}
		args, _ := os.ReadFile(dir + "/args")
		stdin, _ := os.ReadFile(dir + "/stdin")
		if string(args) != "-\n100\n--storage\nlocal-lvm\n" || string(stdin) != "VMA archive bytes" {
			t.Errorf("stand-in got args %q stdin %q", args, stdin)
		}
	})

	t.Run("stdin read error kills the command", func(t *testing.T) {
		boom := errors.New("compressor failed")
		dir := t.TempDir()
		in := io.MultiReader(strings.NewReader("partial"), errReader{boom})
		err := c.Run(ctx, []string{"sh", "-c", `cat > "$1"; echo finished > "$1.done"`, "x", dir + "/out"}, in, nil, nil)
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want %v", err, boom)
		}
		time.Sleep(200 * time.Millisecond)
		if _, err := os.Stat(dir + "/out.done"); err == nil {
			t.Errorf("command ran to completion on truncated input")
		}
	})

	t.Run("context cancellation", func(t *testing.T) {
		dir := t.TempDir()
		ctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(300*time.Millisecond, cancel)
		start := time.Now()
		err := c.Run(ctx, []string{"sh", "-c", `sleep 2; touch "$1"`, "x", dir + "/late"}, nil, nil, nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > 1800*time.Millisecond {
			t.Errorf("Run returned %v after the start, long after cancellation", d)
		}
		time.Sleep(time.Until(start.Add(2500 * time.Millisecond)))
		if _, err := os.Stat(dir + "/late"); err == nil {
			t.Errorf("remote command survived cancellation")
		}
		// The client stays usable.
		if _, err := c.Hostname(context.Background()); err != nil {
			t.Errorf("client unusable after a cancelled Run: %v", err)
		}
	})
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestFileOps(t *testing.T) {
	srv := sshtest.Start(t)
	c := dial(t, srv.Config())
	ctx := context.Background()
	dir := t.TempDir()
	p := filepath.Join(dir, "-it's a $(file)")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path string
		want bool
	}{{p, true}, {dir, true}, {p + ".nope", false}} {
		got, err := c.Exists(ctx, tt.path)
		if err != nil || got != tt.want {
			t.Errorf("Exists(%q) = %v, %v; want %v", tt.path, got, err, tt.want)
		}
	}
	if err := c.Remove(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("Remove left the file: %v", err)
	}
	if err := c.Remove(ctx, p); err != nil {
		t.Errorf("Remove of a missing file: %v", err)
	}
	host, err := c.Hostname(ctx)
	local, _ := os.Hostname()
	if want, _, _ := strings.Cut(local, "."); err != nil || host != want {
		t.Errorf("Hostname() = %q, %v; want %q", host, err, want)
	}
}
