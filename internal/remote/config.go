package remote

import (
	"errors"
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
// and no ~/.ssh/config: the caller resolves defaults (user name, agent
// socket from SSH_AUTH_SOCK, ~/.ssh/known_hosts) and passes them in.
type Config struct {
	User string // login name; required
	Host string // host name or IP address; required
	Port int    // 0 means DefaultPort

	// IdentityFiles are private key files tried in order, before any
	// agent keys, so an explicit key is not crowded out by the server's
	// MaxAuthTries.
	IdentityFiles []string
	// Passphrase, if set, is asked for the passphrase of an encrypted
	// identity file. Without it an encrypted file yields ErrEncryptedKey.
	Passphrase func(file string) ([]byte, error)

	// UseAgent offers the keys of the ssh-agent listening on AgentSocket
	// (the caller passes the value of SSH_AUTH_SOCK).
	UseAgent    bool
	AgentSocket string

	// KnownHostsFile is the OpenSSH known_hosts file the server's host key
	// must be in. A missing file counts as empty: every host is unknown.
	KnownHostsFile string
	// InsecureIgnoreHostKey skips the host key check entirely. Anyone on
	// the path can then impersonate the node; callers should warn.
	InsecureIgnoreHostKey bool

	// Timeout bounds connecting plus the handshake; 0 means DefaultTimeout.
	Timeout time.Duration
}

// addr returns host:port, with IPv6 literals bracketed.
func (c Config) addr() string {
	port := c.Port
	if port == 0 {
		port = DefaultPort
	}
	return net.JoinHostPort(c.Host, strconv.Itoa(port))
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
	case !c.InsecureIgnoreHostKey && c.KnownHostsFile == "":
		return errors.New("remote: no known_hosts file given (Config.KnownHostsFile); " +
			"host keys must be checked unless InsecureIgnoreHostKey is set")
	case c.UseAgent && c.AgentSocket == "":
		return errors.New("remote: UseAgent is set but Config.AgentSocket is empty (is SSH_AUTH_SOCK set?)")
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
