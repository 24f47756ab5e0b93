package remote

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// DefaultPort is the SSH port used when Config.Port is zero.
const DefaultPort = 22

// DefaultTimeout bounds connecting and the SSH handshake when
// Config.Timeout is zero. It does not limit commands or uploads.
const DefaultTimeout = 30 * time.Second

// Config says where and how to connect. The library reads no environment
// and reads ~/.ssh/config only when the caller hands it over (see
// ReadSSHConfig and SSHConfig.Resolve): the caller resolves defaults (user
// name, agent socket from SSH_AUTH_SOCK, ~/.ssh/known_hosts) and passes
// them in.
type Config struct {
	User string // login name; required
	Host string // host name or IP address; required
	Port int    // 0 means DefaultPort

	// IdentityFiles are private key files tried in order, before any
	// agent keys, so an explicit key is not crowded out by the server's
	// MaxAuthTries. An encrypted file whose key the agent holds is signed
	// for by the agent, without a passphrase.
	IdentityFiles []string
	// IdentitiesOnly offers only the keys of IdentityFiles, never the
	// agent's other keys (OpenSSH's IdentitiesOnly).
	IdentitiesOnly bool
	// Passphrase, if set, is asked for the passphrase of an encrypted
	// identity file. Without it an encrypted file yields ErrEncryptedKey.
	Passphrase func(file string) ([]byte, error)

	// UseAgent offers the keys of the ssh-agent listening on AgentSocket
	// (the caller passes the value of SSH_AUTH_SOCK).
	UseAgent    bool
	AgentSocket string

	// KnownHostsFile is the OpenSSH known_hosts file the server's host key
	// must be in. A missing file counts as empty: every host is unknown.
	// Errors name it as the place to record a new key.
	KnownHostsFile string
	// ExtraKnownHostsFiles are consulted along with KnownHostsFile, as
	// OpenSSH's UserKnownHostsFile may name several files.
	ExtraKnownHostsFiles []string
	// InsecureIgnoreHostKey skips the host key check of Host entirely.
	// Anyone on the path can then impersonate the node; callers should
	// warn. It does not extend to Jumps, whose keys are always checked.
	InsecureIgnoreHostKey bool

	// Jumps are the hosts to tunnel through, in order, as OpenSSH's
	// ProxyJump: the first is reached over TCP, each next one, and at
	// last Host, through a TCP forward of the one before. Each is checked
	// against its own known_hosts files and logs in with its own keys;
	// the agent, Passphrase and Timeout serve them all.
	Jumps []Hop

	// Timeout bounds connecting plus the handshake, through every jump;
	// 0 means DefaultTimeout.
	Timeout time.Duration
}

// Hop is a jump host of Config.Jumps. Its fields mean what Config's
// fields of the same names mean.
type Hop struct {
	User string // required
	Host string // required
	Port int    // 0 means DefaultPort

	IdentityFiles  []string
	IdentitiesOnly bool

	KnownHostsFile       string // required: a jump host's key is always checked
	ExtraKnownHostsFiles []string
}

// addr returns host:port, with IPv6 literals bracketed.
func (h Hop) addr() string {
	port := h.Port
	if port == 0 {
		port = DefaultPort
	}
	return net.JoinHostPort(h.Host, strconv.Itoa(port))
}

// knownHostsFiles lists every file the hop's key is looked up in, the one
// new keys belong in first.
func (h Hop) knownHostsFiles() []string {
	if h.KnownHostsFile == "" {
		return h.ExtraKnownHostsFiles
	}
	return append([]string{h.KnownHostsFile}, h.ExtraKnownHostsFiles...)
}

func (h Hop) validate(what string) error {
	switch {
	case h.Host == "":
		return fmt.Errorf("remote: %s: Host is empty", what)
	case h.User == "":
		return fmt.Errorf("remote: %s: User is empty", what)
	case h.Port < 0 || h.Port > 65535:
		return fmt.Errorf("remote: %s: Port out of range", what)
	}
	return nil
}

// target returns the per-host settings of the final host as a Hop, so
// Dial treats every host on the way alike.
func (c Config) target() Hop {
	return Hop{
		User: c.User, Host: c.Host, Port: c.Port,
		IdentityFiles: c.IdentityFiles, IdentitiesOnly: c.IdentitiesOnly,
		KnownHostsFile: c.KnownHostsFile, ExtraKnownHostsFiles: c.ExtraKnownHostsFiles,
	}
}

func (c Config) timeout() time.Duration {
	if c.Timeout <= 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

func (c Config) validate() error {
	switch {
	case c.Host == "":
		return errors.New("remote: Config.Host is empty")
	case c.User == "":
		return errors.New("remote: Config.User is empty")
	case c.Port < 0 || c.Port > 65535:
		return errors.New("remote: Config.Port out of range")
	case !c.InsecureIgnoreHostKey && len(c.target().knownHostsFiles()) == 0:
		return errors.New("remote: no known_hosts file given (Config.KnownHostsFile); " +
			"host keys must be checked unless InsecureIgnoreHostKey is set")
	case c.UseAgent && c.AgentSocket == "":
		return errors.New("remote: UseAgent is set but Config.AgentSocket is empty (is SSH_AUTH_SOCK set?)")
	}
	for i, j := range c.Jumps {
		what := fmt.Sprintf("Config.Jumps[%d]", i)
		if err := j.validate(what); err != nil {
			return err
		}
		if len(j.knownHostsFiles()) == 0 {
			return fmt.Errorf("remote: %s (%s): no known_hosts file given; a jump host's key is always checked", what, j.Host)
		}
	}
	return nil
}

// splitHostPort splits host:port, falling back to the default port for a
// bare host, for use in messages.
func splitHostPort(hostport string) (host, port string) {
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport, strconv.Itoa(DefaultPort)
	}
	return h, p
}
