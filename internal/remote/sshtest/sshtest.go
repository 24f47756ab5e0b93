// Package sshtest runs a real OpenSSH server (Debian's /usr/sbin/sshd) on
// 127.0.0.1 for tests of code that talks SSH, such as package remote and
// the deploy command.
//
// The server runs as the current user and accepts one generated client
// key. Its sshd_config sets PATH with BinDir first, so a test can stand in
// for qmrestore or any other program with AddCommand. Commands run under
// the user's login shell, as on a real node; SHLVL=1 keeps Debian's bash
// from sourcing ~/.bashrc, which could otherwise put other directories
// before BinDir.
//
// StartJump runs a second kind of server, a jump host (OpenSSH's
// ProxyJump, ssh -J): it lets clients open TCP forwards to the targets it
// was started for and to nothing else, and records each forward, so a test
// can tell a connection that went through it from one that went straight
// to the target. Plain servers refuse forwarding altogether.
//
// Every server also holds a host certificate for its ed25519 key, signed
// by a CA of its own (HostCA), for tests of @cert-authority lines.
//
// When sshd is not installed the tests that call Start are skipped, unless
// the environment variable VMATOOL_REQUIRE_TOOLS=1 makes that a failure.
package sshtest

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/vmatool/vmatool/internal/remote"
)

// SSHD is the server binary. It must be an absolute path: sshd refuses to
// re-execute itself otherwise.
const SSHD = "/usr/sbin/sshd"

// systemPath follows BinDir on the remote PATH.
const systemPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Server is a running sshd. Its fields are read-only.
type Server struct {
	Host string // always 127.0.0.1
	Port int
	Addr string // Host:Port
	User string // the current user, who is the one allowed to log in

	HostKey        ssh.PublicKey // the server's ed25519 host key
	KnownHostsLine string        // a known_hosts line for HostKey at Addr
	KnownHostsFile string        // a file holding KnownHostsLine
	// HostCA signed the certificate the server offers for HostKey, valid
	// for the principal Host. Clients only see it when they ask for
	// certificate host key algorithms.
	HostCA ssh.PublicKey

	ClientKeyFile string     // unencrypted OpenSSH private key, authorized
	ClientKey     ssh.Signer // the same key, parsed

	BinDir string // first on PATH for every remote command
	Dir    string // scratch directory owned by the server's test

	// permitOpen lists the host:port a jump host forwards to; empty for
	// a plain server, which forwards nothing.
	permitOpen []string

	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

// Start runs a fresh sshd for t and stops it when t ends. It also writes
// an ECDSA host key that is deliberately not in KnownHostsFile: clients
// must still pick the ed25519 key that is on record.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, nil)
}

// StartJump runs a fresh sshd that serves as a jump host: it accepts the
// same kind of login as Start's servers and opens TCP forwards
// (direct-tcpip channels) to the targets, host:port addresses such as a
// Server's Addr, and only to those.
func StartJump(t testing.TB, targets ...string) *Server {
	t.Helper()
	if len(targets) == 0 {
		t.Fatal("sshtest: StartJump needs at least one target")
	}
	return start(t, targets)
}

func start(t testing.TB, permitOpen []string) *Server {
	t.Helper()
	if _, err := os.Stat(SSHD); err != nil {
		if os.Getenv("VMATOOL_REQUIRE_TOOLS") == "1" {
			t.Fatalf("sshtest: %s not found and VMATOOL_REQUIRE_TOOLS=1: install openssh-server", SSHD)
		}
		t.Skipf("sshtest: %s not found (apt-get install openssh-server); skipping", SSHD)
	}
	if os.Geteuid() == 0 {
		// The privilege separation directory; root's sshd will not start
		// without it, and containers often lack /run/sshd.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("sshtest: %v", err)
		}
	}
	u, err := user.Current()
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	s := &Server{Host: "127.0.0.1", User: u.Username, Dir: t.TempDir(), permitOpen: permitOpen}
	s.BinDir = filepath.Join(s.Dir, "bin")
	if err := os.Mkdir(s.BinDir, 0o755); err != nil {
		t.Fatal(err)
	}
	s.writeKeys(t)

	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if lastErr = s.start(t); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("sshtest: starting sshd: %v", lastErr)
	}
	s.KnownHostsLine = knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, s.HostKey)
	s.KnownHostsFile = filepath.Join(s.Dir, "known_hosts")
	writeFile(t, s.KnownHostsFile, s.KnownHostsLine+"\n", 0o644)
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("sshd log:\n%s", s.Log())
		}
	})
	return s
}

// Config returns a remote.Config that reaches the server with the client
// key and checks the host key against KnownHostsFile.
func (s *Server) Config() remote.Config {
	return remote.Config{
		User:           s.User,
		Host:           s.Host,
		Port:           s.Port,
		IdentityFiles:  []string{s.ClientKeyFile},
		KnownHostsFile: s.KnownHostsFile,
		Timeout:        10 * time.Second,
	}
}

// AddCommand installs an executable /bin/sh script named name in BinDir,
// so remote commands of that name run it instead of the real program. It
// returns the script's path.
func (s *Server) AddCommand(t testing.TB, name, script string) string {
	t.Helper()
	p := filepath.Join(s.BinDir, name)
	writeFile(t, p, "#!/bin/sh\n"+script+"\n", 0o755)
	return p
}

// DropConnections kills the sshd processes serving current connections,
// as a crash or a network failure would, and returns how many it killed.
// Commands those connections started keep running and see their input
// end. The listening server stays up for new connections.
func (s *Server) DropConnections(t testing.TB) int {
	t.Helper()
	n := 0
	for _, pid := range descendants(s.cmd.Process.Pid) {
		if comm(pid) != "sshd" {
			continue
		}
		if p, err := os.FindProcess(pid); err == nil && p.Kill() == nil {
			n++
		}
	}
	return n
}

// CPU returns the processor time the server has used so far: its own
// and that of every process it started and reaped, the connections'
// sshd processes and the commands they ran, once they have all exited.
// It waits up to timeout for the current connections to end (sshd only
// counts a child's time once it reaps it), and reports false if they did
// not. A benchmark that shares this machine's cores with the server
// learns from it what the server side cost.
func (s *Server) CPU(timeout time.Duration) (time.Duration, bool) {
	deadline := time.Now().Add(timeout)
	for len(descendants(s.cmd.Process.Pid)) > 0 {
		if time.Now().After(deadline) {
			return 0, false
		}
		time.Sleep(5 * time.Millisecond)
	}
	// After the command name: state is field 3, utime 14 ... cstime 17.
	f, ok := procStat(s.cmd.Process.Pid)
	if !ok || len(f) < 15 {
		return 0, false
	}
	var ticks int64
	for _, v := range f[11:15] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, false
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, true
}

// clockTicks is Linux's USER_HZ, the unit of /proc's CPU times, which is
// 100 on every architecture Go supports.
const clockTicks = 100

// Log returns what sshd wrote to its standard error so far.
func (s *Server) Log() string { return s.log.String() }

// AuthorizeKey lets key log in too. sshd reads the authorized keys at
// every login, so this takes effect for the next connection.
func (s *Server) AuthorizeKey(t testing.TB, key ssh.PublicKey) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(s.Dir, "authorized_keys"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(ssh.MarshalAuthorizedKey(key)); err != nil {
		t.Fatal(err)
	}
}

// Forwards returns the host:port targets of the TCP forwards the server
// opened so far, in order. Only a jump host opens any.
func (s *Server) Forwards() []string {
	var out []string
	for _, line := range strings.Split(s.Log(), "\n") {
		// sshd logs at DEBUG1, before it connects: "server_request_direct_tcpip:
		// originator 0.0.0.0 port 0, target 127.0.0.1 port 2222"
		if !strings.Contains(line, "server_request_direct_tcpip:") {
			continue
		}
		_, target, ok := strings.Cut(line, ", target ")
		if f := strings.Fields(target); ok && len(f) == 3 && f[1] == "port" {
			out = append(out, net.JoinHostPort(f[0], f[2]))
		}
	}
	return out
}

// KeysOffered returns the SHA-256 fingerprints of the client keys the
// server was offered so far, accepted or not, each once, in order.
func (s *Server) KeysOffered() []string {
	var out []string
	seen := map[string]bool{}
	for _, line := range strings.Split(s.Log(), "\n") {
		if !strings.Contains(line, "Failed publickey for ") && !strings.Contains(line, "Accepted key ") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "SHA256:") && !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	return out
}

// Dialed reports whether one of the server's processes holds the local
// end of a TCP connection from 127.0.0.1:port: a target can tell from the
// source port of a login whether its jump host made the connection.
func (s *Server) Dialed(port int) bool {
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 {
				continue
			}
			_, hexPort, _ := strings.Cut(f[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); err == nil && int(p) == port {
				inodes["socket:["+f[9]+"]"] = true
			}
		}
	}
	for _, pid := range append(descendants(s.cmd.Process.Pid), s.cmd.Process.Pid) {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			if link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && inodes[link] {
				return true
			}
		}
	}
	return false
}

func (s *Server) writeKeys(t testing.TB) {
	t.Helper()
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	writePrivateKey(t, filepath.Join(s.Dir, "ssh_host_ed25519_key"), hostPriv)
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	s.HostKey = hostSigner.PublicKey()

	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(s.Dir, "ssh_host_ecdsa_key"),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})), 0o600)

	_, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s.ClientKeyFile = filepath.Join(s.Dir, "id_ed25519")
	writePrivateKey(t, s.ClientKeyFile, clientPriv)
	if s.ClientKey, err = ssh.NewSignerFromKey(clientPriv); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(s.Dir, "authorized_keys"),
		string(ssh.MarshalAuthorizedKey(s.ClientKey.PublicKey())), 0o600)

	_, caPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := ssh.NewSignerFromKey(caPriv)
	if err != nil {
		t.Fatal(err)
	}
	s.HostCA = ca.PublicKey()
	cert := &ssh.Certificate{
		Key:             s.HostKey,
		CertType:        ssh.HostCert,
		KeyId:           "sshtest host",
		ValidPrincipals: []string{s.Host},
		ValidBefore:     ssh.CertTimeInfinity,
	}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(s.Dir, "ssh_host_ed25519_key-cert.pub"), string(ssh.MarshalAuthorizedKey(cert)), 0o644)
}

// start tries one free port.
func (s *Server) start(t testing.TB) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	q := strconv.Quote
	// A plain server forwards nothing, so a connection that reaches a
	// target through a jump host can only have come through that jump.
	forwarding := []string{"AllowTcpForwarding no", "LogLevel VERBOSE"}
	if len(s.permitOpen) > 0 {
		forwarding = []string{
			"AllowTcpForwarding yes",
			"PermitOpen " + strings.Join(s.permitOpen, " "),
			// DEBUG1 is the level at which sshd logs each forward.
			"LogLevel DEBUG1",
		}
	}
	conf := strings.Join(append(forwarding,
		"ListenAddress 127.0.0.1",
		"Port "+strconv.Itoa(port),
		"HostKey "+q(filepath.Join(s.Dir, "ssh_host_ed25519_key")),
		"HostKey "+q(filepath.Join(s.Dir, "ssh_host_ecdsa_key")),
		"HostCertificate "+q(filepath.Join(s.Dir, "ssh_host_ed25519_key-cert.pub")),
		"AuthorizedKeysFile "+q(filepath.Join(s.Dir, "authorized_keys")),
		"PidFile "+q(filepath.Join(s.Dir, "sshd.pid")),
		"StrictModes no",
		"UsePAM no",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PubkeyAuthentication yes",
		"PermitRootLogin yes",
		"PrintMotd no",
		"MaxStartups 50",
		// Debian's bash sources ~/.bashrc for sshd's commands only while
		// SHLVL < 2, and a .bashrc may prepend to PATH; SHLVL=1 keeps
		// BinDir first on PATH without a ForceCommand wrapper, which would
		// change how sshd treats the session.
		"SetEnv "+strconv.Quote("PATH="+s.BinDir+":"+systemPath)+" SHLVL=1",
	), "\n") + "\n"
	confPath := filepath.Join(s.Dir, "sshd_config")
	writeFile(t, confPath, conf, 0o600)

	s.log = &syncBuffer{}
	cmd := exec.Command(SSHD, "-D", "-e", "-f", confPath)
	cmd.Stdout = s.log
	cmd.Stderr = s.log
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()

	addr := net.JoinHostPort(s.Host, strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if banner(addr) {
			s.cmd, s.done, s.Port, s.Addr = cmd, done, port, addr
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("sshd exited: %s", s.log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("sshd did not answer on %s: %s", addr, s.log.String())
		}
	}
}

// stop ends the listener and every connection it spawned. The
// connections go before the wait: they share sshd's log pipe, so Wait
// would not return while a client still held one open.
func (s *Server) stop() {
	kids := descendants(s.cmd.Process.Pid)
	s.cmd.Process.Kill()
	for _, pid := range kids {
		if comm(pid) == "sshd" {
			if p, err := os.FindProcess(pid); err == nil {
				p.Kill()
			}
		}
	}
	<-s.done
}

// banner reports whether an SSH server answers on addr.
func banner(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "SSH-2.0-")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func writePrivateKey(t testing.TB, path string, key ed25519.PrivateKey) {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(key, "")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(pem.EncodeToMemory(block)), 0o600)
}

func writeFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode is filtered by umask; sshd checks key modes.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// descendants lists the processes below pid, read from /proc.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, ok := parentOf(p); ok {
			children[pp] = append(children[pp], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// procStat returns the fields of /proc/<pid>/stat after the command
// name, from the state (field 3) on: the name, in parentheses, may itself
// contain spaces or ")", so the fields start after the last ")".
func procStat(pid int) ([]string, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, false
	}
	return strings.Fields(string(b[i+1:])), true
}

// parentOf reads the parent pid (field 4) from /proc/<pid>/stat.
func parentOf(pid int) (int, bool) {
	f, ok := procStat(pid)
	if !ok || len(f) < 2 {
		return 0, false
	}
	pp, err := strconv.Atoi(f[1])
	return pp, err == nil
}

func comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of sshd's
// output copier and reads of the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
