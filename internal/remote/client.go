package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Client is an authenticated SSH connection to one host, perhaps through
// jump hosts. It is safe for concurrent use: each call opens its own
// session.
type Client struct {
	ssh   *ssh.Client
	jumps []*ssh.Client // the connections to the jump hosts, first first
	addr  string
}

// hop is one host on the way, ready to dial.
type hop struct {
	addr      string
	user      string
	auth      *hopAuth
	config    *ssh.ClientConfig
	jumpIndex int // position in Config.Jumps, or -1 for the target
}

// Dial connects to cfg.Host, through cfg.Jumps if any, checks each host's
// key and authenticates to each. The context bounds the connect and the
// handshakes (as does cfg.Timeout); cancelling it later does not close
// the returned Client.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ag, closeAgent, err := dialAgent(cfg)
	defer closeAgent()
	if err != nil {
		return nil, err
	}
	// Everything that can fail without the network fails first, for
	// every hop, before any connection is made.
	var hops []hop
	for i, h := range append(slices.Clone(cfg.Jumps), cfg.target()) {
		p := hop{addr: h.addr(), user: h.User, jumpIndex: i}
		insecure := false
		if i == len(cfg.Jumps) {
			p.jumpIndex, insecure = -1, cfg.InsecureIgnoreHostKey
		}
		if p.auth, err = newHopAuth(h, cfg.Passphrase, ag); err != nil {
			return nil, p.wrap(err)
		}
		hostKeyCallback, algos, err := hostKeyCheck(h.knownHostsFiles(), insecure, p.addr)
		if err != nil {
			return nil, p.wrap(err)
		}
		p.config = &ssh.ClientConfig{
			User:              h.User,
			Auth:              []ssh.AuthMethod{p.auth.method()},
			HostKeyCallback:   hostKeyCallback,
			HostKeyAlgorithms: algos,
		}
		hops = append(hops, p)
	}

	ctx, cancel := context.WithTimeout(ctx, cfg.timeout())
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", hops[0].addr)
	if err != nil {
		return nil, hops[0].wrap(fmt.Errorf("remote: connecting to %s: %w", hops[0].addr, err))
	}
	// x/crypto's handshake takes no context: a deadline and a watchdog that
	// close the first socket stand in for one. Every later hop runs inside
	// that socket, so closing it ends their handshakes too.
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	var clients []*ssh.Client
	fail := func(err error) (*Client, error) {
		stop()
		for i := len(clients) - 1; i >= 0; i-- {
			clients[i].Close()
		}
		conn.Close()
		return nil, err
	}
	next := net.Conn(conn)
	for i, p := range hops {
		if i > 0 {
			// The previous hop opens a TCP connection to this one, as
			// ssh -J does; the name is resolved there, not here.
			if next, err = clients[i-1].DialContext(ctx, "tcp", p.addr); err != nil {
				if ctxErr := contextError(ctx, err); ctxErr != nil {
					return fail(fmt.Errorf("remote: connecting to %s: %w", p.addr, ctxErr))
				}
				return fail(fmt.Errorf("remote: jump host %s could not connect to %s: %w", hops[i-1].addr, p.addr, err))
			}
		}
		sc, chans, reqs, err := ssh.NewClientConn(next, p.addr, p.config)
		if err != nil {
			next.Close()
			if ctxErr := contextError(ctx, err); ctxErr != nil {
				return fail(fmt.Errorf("remote: SSH handshake with %s: %w", p.addr, ctxErr))
			}
			return fail(p.wrap(p.handshakeError(err)))
		}
		clients = append(clients, ssh.NewClient(sc, chans, reqs))
	}
	if !stop() {
		return fail(fmt.Errorf("remote: connecting to %s: %w", hops[len(hops)-1].addr, context.Cause(ctx)))
	}
	conn.SetDeadline(time.Time{})
	n := len(clients)
	return &Client{ssh: clients[n-1], jumps: clients[:n-1], addr: hops[n-1].addr}, nil
}

// contextError returns the context's error if err came from the context
// ending (or from the socket deadline that stands in for it), else nil.
func contextError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	// The socket deadline is the context's; report it as such. Behind a
	// jump host the deadline shows only as the tunnel closing, and may do
	// so a moment before the context's own timer fires.
	dl, ok := ctx.Deadline()
	if errors.Is(err, os.ErrDeadlineExceeded) || ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// handshakeError gives the failures a user can act on their own kind.
func (p hop) handshakeError(err error) error {
	var hk *HostKeyError
	if errors.As(err, &hk) {
		return hk
	}
	// x/crypto reports a refused login only as text.
	if strings.Contains(err.Error(), "unable to authenticate") {
		return p.auth.refused(p.addr, p.user, err)
	}
	return fmt.Errorf("remote: SSH handshake with %s: %w", p.addr, err)
}

// wrap says which jump host an error is about; a host key error already
// names the host and stays as it is.
func (p hop) wrap(err error) error {
	var hk *HostKeyError
	if p.jumpIndex < 0 || errors.As(err, &hk) {
		return err
	}
	return &jumpError{n: p.jumpIndex + 1, addr: p.addr, err: err}
}

// jumpError is an error at a jump host, before the target was reached.
type jumpError struct {
	n    int
	addr string
	err  error
}

func (e *jumpError) Error() string {
	return fmt.Sprintf("remote: jump host %d (%s): %s", e.n, e.addr, strings.TrimPrefix(e.err.Error(), "remote: "))
}

func (e *jumpError) Unwrap() error { return e.err }

// Addr returns the host:port the client is connected to.
func (c *Client) Addr() string { return c.addr }

// Cipher returns the cipher the connection negotiated for what this side
// sends, e.g. "aes128-gcm@openssh.com" (or "" if x/crypto does not say).
// x/crypto proposes AES-GCM first and the client's order decides, so
// OpenSSH servers agree to it; with AES-NI it is the cheapest cipher to
// seal here and to open on the node, where each streamed byte is paid for
// twice.
func (c *Client) Cipher() string {
	if m, ok := c.ssh.Conn.(ssh.AlgorithmsConnMetadata); ok {
		return m.Algorithms().Write.Cipher
	}
	return ""
}

// Close closes the connection and those to the jump hosts; sessions still
// running are cut off.
func (c *Client) Close() error {
	err := c.ssh.Close()
	for i := len(c.jumps) - 1; i >= 0; i-- {
		c.jumps[i].Close()
	}
	return err
}
