package pve

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultPort is the port of the Proxmox VE API, used when the base URL
// is a bare host name.
const DefaultPort = 8006

// DefaultTimeout bounds each API request when no HTTP client is given.
// Long operations run as tasks, so no single request takes long.
const DefaultTimeout = 60 * time.Second

// maxResponse bounds how much of a response body is read.
const maxResponse = 32 << 20

// Client calls the API of one Proxmox VE cluster. Build it with New; it is
// safe for concurrent use.
type Client struct {
	BaseURL    *url.URL // ends in /api2/json
	Token      Token
	HTTPClient *http.Client
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

// WithHTTPClient uses hc for every request, as it is. It cannot be
// combined with the TLS options, which configure the client New builds.
func WithHTTPClient(hc *http.Client) Option {
	return func(o *options) error {
		o.httpClient = hc
		return nil
	}
}

// WithTimeout sets the per-request timeout of the client New builds;
// 0 means DefaultTimeout.
func WithTimeout(d time.Duration) Option {
	return func(o *options) error {
		o.timeout = d
		return nil
	}
}

// New returns a client for the API at baseURL, which may be a full URL
// ("https://pve.example.org:8006") or a bare host ("pve.example.org",
// meaning https and port 8006). token is USER@REALM!TOKENID=SECRET.
//
// TLS is verified against the system roots unless an option says
// otherwise. Errors never contain the token's secret.
func New(baseURL, token string, opts ...Option) (*Client, error) {
	var o options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	tok, err := ParseToken(token)
	if err != nil {
		return nil, err
	}
	u, err := parseBaseURL(baseURL)
	if err != nil {
		return nil, err
	}
	hc := o.httpClient
	if hc != nil && (o.pin != nil || o.roots != nil || o.timeout != 0) {
		return nil, errors.New("pve: WithHTTPClient cannot be combined with TLS or timeout options")
	}
	if hc == nil {
		timeout := o.timeout
		if timeout <= 0 {
			timeout = DefaultTimeout
		}
		hc = &http.Client{
			Timeout: timeout,
			Transport: &http.Transport{
				// No Proxy: a library does not read HTTPS_PROXY.
				DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
				TLSClientConfig:     tlsConfig(o.pin, o.roots),
				TLSHandshakeTimeout: 15 * time.Second,
				IdleConnTimeout:     90 * time.Second,
				MaxIdleConnsPerHost: 4,
				ForceAttemptHTTP2:   true,
			},
		}
	}
	return &Client{BaseURL: u, Token: tok, HTTPClient: hc}, nil
}

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
func (c *Client) String() string {
	return fmt.Sprintf("pve.Client{%s, token %s}", c.BaseURL, c.Token.ID())
}

// Format hides the token's secret from every verb.
func (c *Client) Format(f fmt.State, verb rune) { fmt.Fprint(f, c.String()) }

// apiPath joins escaped path segments below /api2/json.
func apiPath(segments ...string) string {
	var b strings.Builder
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// envelope is every API answer: the payload in "data", plus what errors
// and paging add.
type envelope struct {
	Data    json.RawMessage            `json:"data"`
	Message string                     `json:"message"`
	Errors  map[string]json.RawMessage `json:"errors"`
	Total   *int                       `json:"total"`
}

// do calls the API. path is escaped and relative to /api2/json. For POST
// and PUT, params go form-encoded in the body, as Proxmox expects;
// otherwise in the query string. out receives "data" unless nil. It
// returns the envelope's "total", or -1.
func (c *Client) do(ctx context.Context, method, path string, params url.Values, out any) (int, error) {
	if strings.Contains(path+"/", "//") {
		return -1, fmt.Errorf("pve: %s %s: empty node, storage or ID", method, path)
	}
	u := *c.BaseURL
	u.RawPath = c.BaseURL.EscapedPath() + path
	p, err := url.PathUnescape(u.RawPath)
	if err != nil {
		return -1, fmt.Errorf("pve: bad path %q: %w", path, err)
	}
	u.Path = p
	var body io.Reader
	if method == http.MethodPost || method == http.MethodPut {
		body = strings.NewReader(params.Encode())
	} else if len(params) > 0 {
		u.RawQuery = params.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return -1, fmt.Errorf("pve: %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", c.Token.authorization())
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		// A refused certificate concerns the server, not this request.
		if certErr := certificateError(err); certErr != nil {
			return -1, certErr
		}
		return -1, fmt.Errorf("pve: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return -1, fmt.Errorf("pve: %s %s: reading response: %w", method, path, err)
	}
	var env envelope
	jsonErr := json.Unmarshal(raw, &env)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return -1, apiError(method, path, resp, env)
	}
	if jsonErr != nil {
		return -1, fmt.Errorf("pve: %s %s: decoding response: %w", method, path, jsonErr)
	}
	if out != nil && len(env.Data) > 0 {
		if err := json.Unmarshal(env.Data, out); err != nil {
			return -1, fmt.Errorf("pve: %s %s: decoding data: %w", method, path, err)
		}
	}
	total := -1
	if env.Total != nil {
		total = *env.Total
	}
	return total, nil
}

// apiError builds an *APIError. Proxmox puts its message in the reason
// phrase of the status line and, in newer versions, also in the body.
func apiError(method, path string, resp *http.Response, env envelope) error {
	e := &APIError{Method: method, Path: path, StatusCode: resp.StatusCode}
	e.Message = strings.TrimSpace(env.Message)
	if e.Message == "" {
		_, reason, _ := strings.Cut(resp.Status, " ")
		e.Message = strings.TrimSpace(reason)
	}
	if len(env.Errors) > 0 {
		e.Errors = make(map[string]string, len(env.Errors))
		for k, v := range env.Errors {
			var s string
			if json.Unmarshal(v, &s) != nil {
				s = string(v)
			}
			e.Errors[k] = s
		}
	}
	return e
}
