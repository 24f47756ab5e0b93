package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Client is an authenticated SSH connection to one host. It is safe for
// concurrent use: each call opens its own session.
type Client struct {
	ssh  *ssh.Client
	addr string
}

// Dial connects to cfg.Host, checks its host key and authenticates. The
// context bounds the connect and the handshake (as does cfg.Timeout);
// cancelling it later does not close the returned Client.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	addr := cfg.addr()
	auth, closeAgent, err := authMethods(cfg)
	defer closeAgent()
	if err != nil {
		return nil, err
	}
	hostKeyCallback, algos, err := hostKeyCheck(cfg, addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout())
	defer cancel()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("remote: connecting to %s: %w", addr, err)
	}
	// x/crypto's handshake takes no context: a deadline and a watchdog that
	// closes the socket stand in for one.
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(conn, addr, &ssh.ClientConfig{
		User:              cfg.User,
		Auth:              auth,
		HostKeyCallback:   hostKeyCallback,
		HostKeyAlgorithms: algos,
	})
	if !stop() {
		if err == nil {
			sc.Close()
		}
		conn.Close()
		return nil, fmt.Errorf("remote: connecting to %s: %w", addr, context.Cause(ctx))
	}
	if err != nil {
		conn.Close()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The socket deadline is the context's; report it as such.
			return nil, fmt.Errorf("remote: SSH handshake with %s: %w", addr, context.DeadlineExceeded)
		}
		return nil, handshakeError(addr, cfg.User, err)
	}
	conn.SetDeadline(time.Time{})
	return &Client{ssh: ssh.NewClient(sc, chans, reqs), addr: addr}, nil
}

// handshakeError gives the failures a user can act on their own kind.
func handshakeError(addr, user string, err error) error {
	var hk *HostKeyError
	if errors.As(err, &hk) {
		return hk
	}
	// x/crypto reports a refused login only as text.
	if strings.Contains(err.Error(), "unable to authenticate") {
		return fmt.Errorf("%w: %s refused every key offered for user %q (%v)", ErrAuth, addr, user, err)
	}
	return fmt.Errorf("remote: SSH handshake with %s: %w", addr, err)
}

// Addr returns the host:port the client is connected to.
func (c *Client) Addr() string { return c.addr }

// Close closes the connection; sessions still running are cut off.
func (c *Client) Close() error { return c.ssh.Close() }
