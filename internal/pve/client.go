package pve

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	proxmox "github.com/luthermonson/go-proxmox"
)

// DefaultPort is the port of the Proxmox VE API, used when the base URL
// is a bare host name.
const DefaultPort = 8006

// DefaultTimeout bounds each API request except uploads. Long operations
// run as tasks, so no single request takes long.
const DefaultTimeout = 60 * time.Second

// Client calls the API of one Proxmox VE cluster. Build it with New; it is
// safe for concurrent use.
type Client struct {
	base    string // https://host:port/api2/json
	token   Token
	hc      *http.Client
	api     *proxmox.Client // shows the token under %+v: never print it
	timeout time.Duration
}

// Option configures New.
type Option func(*options) error

type options struct {
	pin        []byte
	roots      *x509.CertPool
	httpClient *http.Client
	timeout    time.Duration
}

// WithTLSFingerprint pins the node's certificate by the SHA-256 fingerprint
// of its DER encoding, as the Proxmox web UI and `pvenode cert info` show
// it (colon-separated hex; colons optional, any case). The pin replaces CA
// and host name verification, which is what a self-signed node needs.
func WithTLSFingerprint(fp string) Option {
	return func(o *options) error {
		b, err := parseFingerprint(fp)
		o.pin = b
		return err
	}
}

// WithRootCAs verifies the server against these roots instead of the
// system's, for clusters with a private CA.
func WithRootCAs(pool *x509.CertPool) Option {
	return func(o *options) error {
		o.roots = pool
		return nil
	}
}

// WithHTTPClient sends every request through hc, as it is. It cannot be
// combined with WithTLSFingerprint or WithRootCAs, which configure the
// client New builds.
func WithHTTPClient(hc *http.Client) Option {
	return func(o *options) error {
		o.httpClient = hc
		return nil
	}
}

// WithTimeout sets the per-request timeout; 0 means DefaultTimeout.
// Uploads have none: they end with their context.
func WithTimeout(d time.Duration) Option {
	return func(o *options) error {
		o.timeout = d
		return nil
	}
}

// New returns a client for the API at baseURL, which may be a full URL
// ("https://pve.example.org:8006") or a bare host ("pve.example.org",
// meaning https and port 8006). TLS is verified against the system roots
// unless an option says otherwise. No request is made.
func New(baseURL string, token Token, opts ...Option) (*Client, error) {
	var o options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if err := token.validate(); err != nil {
		return nil, err
	}
	u, err := parseBaseURL(baseURL)
	if err != nil {
		return nil, err
	}
	hc := o.httpClient
	if hc != nil && (o.pin != nil || o.roots != nil) {
		return nil, errors.New("pve: WithHTTPClient cannot be combined with TLS options")
	}
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{
			// No Proxy: a library does not read HTTPS_PROXY.
			DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:     tlsConfig(o.pin, o.roots),
			TLSHandshakeTimeout: 15 * time.Second,
			IdleConnTimeout:     90 * time.Second,
			MaxIdleConnsPerHost: 4,
			ForceAttemptHTTP2:   true,
		}}
	}
	c := &Client{base: u.String(), token: token, hc: hc, timeout: o.timeout}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	c.api = c.newAPI()
	return c, nil
}

// newAPI builds a go-proxmox client on the shared HTTP client. Neither
// retries (a POST that creates a VM must not be sent twice) nor its
// logger (a library never prints) are wanted.
func (c *Client) newAPI(extra ...proxmox.Option) *proxmox.Client {
	opts := append([]proxmox.Option{
		proxmox.WithHTTPClient(c.hc),
		proxmox.WithAPIToken(c.token.ID(), c.token.Secret),
		proxmox.WithLogger(silent{}),
		proxmox.WithUserAgent("vmatool"),
	}, extra...)
	return proxmox.NewClient(c.base, opts...)
}

type silent struct{}

func (silent) Debugf(string, ...any) {}
func (silent) Errorf(string, ...any) {}
func (silent) Infof(string, ...any)  {}
func (silent) Warnf(string, ...any)  {}

func parseBaseURL(s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "://") {
		host := s
		if _, _, err := net.SplitHostPort(s); err != nil {
			host = net.JoinHostPort(strings.Trim(s, "[]"), strconv.Itoa(DefaultPort))
		}
		s = "https://" + host
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("pve: base URL: %w", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("pve: base URL %q: want https://host[:port]", s)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if !strings.HasSuffix(u.Path, "/api2/json") {
		u.Path += "/api2/json"
	}
	u.RawPath, u.RawQuery, u.Fragment, u.User = "", "", "", nil
	return u, nil
}

// String describes the client without its secret.
func (c Client) String() string {
	return fmt.Sprintf("pve.Client{%s, token %s}", c.base, c.token.ID())
}

// Format hides the token's secret from every verb, for Client and
// *Client alike.
func (c Client) Format(f fmt.State, verb rune) { fmt.Fprint(f, c.String()) }

// call runs one API request under the per-request timeout and turns
// go-proxmox's errors into this package's.
func (c *Client) call(ctx context.Context, what string, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.wrap(what, fn(ctx))
}

// wrap classifies an error of go-proxmox or net/http.
func (c *Client) wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	var perr *proxmox.APIError
	if errors.As(err, &perr) {
		return newAPIError(what, perr)
	}
	// A refused certificate concerns the server, not this request.
	if certErr := certificateError(err); certErr != nil {
		return certErr
	}
	return fmt.Errorf("pve: %s: %w", what, err)
}

// nameRE is what node and storage names may hold: they go into URL paths
// unescaped, so nothing else gets through.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func checkName(kind, s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("pve: bad %s name %q", kind, s)
	}
	return nil
}

// MinVMID and MaxVMID bound the VM IDs Proxmox accepts.
const (
	MinVMID = 100
	MaxVMID = 999999999
)

func checkVMID(vmid int) error {
	if vmid < MinVMID || vmid > MaxVMID {
		return fmt.Errorf("pve: VM ID %d out of range %d..%d", vmid, MinVMID, MaxVMID)
	}
	return nil
}

// checkNodeVM validates the parts of a VM's path.
func checkNodeVM(node string, vmid int) error {
	if err := checkName("node", node); err != nil {
		return err
	}
	return checkVMID(vmid)
}

// taskOf turns the *Task go-proxmox returns into a UPID; a nil task is
// the zero UPID (work done at once).
func taskOf(what string, t *proxmox.Task) (UPID, error) {
	if t == nil || t.UPID == "" {
		return UPID{}, nil
	}
	u, err := ParseUPID(string(t.UPID))
	if err != nil {
		return UPID{}, fmt.Errorf("pve: %s: %w", what, err)
	}
	return u, nil
}

// upidOf parses the UPID a generic call returned as a string.
func upidOf(what, s string) (UPID, error) {
	return taskOf(what, &proxmox.Task{UPID: proxmox.UPID(s)})
}

// boolForm encodes a boolean as the API's parameter checker wants it.
func boolForm(b bool) int {
	if b {
		return 1
	}
	return 0
}
