package pve

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"

	proxmox "github.com/luthermonson/go-proxmox"
)

// Sentinel errors, for errors.Is.
var (
	// ErrUnauthorized means the API rejected the token (HTTP 401).
	ErrUnauthorized = errors.New("pve: authentication failed")
	// ErrForbidden means the token lacks a privilege (HTTP 403).
	ErrForbidden = errors.New("pve: permission denied")
	// ErrVMNotFound means the node has no VM with the given ID.
	ErrVMNotFound = errors.New("pve: VM does not exist")
	// ErrVMExists means a restore or create met an existing VM or
	// container with the same ID, anywhere in the cluster.
	ErrVMExists = errors.New("pve: VM already exists")
	// ErrTaskFailed means a task stopped with an error exit status.
	ErrTaskFailed = errors.New("pve: task failed")
	// ErrNotTemplate means a template task ended without making the VM a
	// template.
	ErrNotTemplate = errors.New("pve: VM is not a template")
	// ErrUntrustedCertificate means the node's TLS certificate did not
	// verify against the trusted roots (a self-signed node certificate).
	ErrUntrustedCertificate = errors.New("pve: TLS certificate not trusted")
	// ErrFingerprintMismatch means the certificate differs from the pinned
	// fingerprint.
	ErrFingerprintMismatch = errors.New("pve: TLS certificate fingerprint mismatch")
)

// Proxmox reports a missing VM as a missing config file, with HTTP 500:
// "Configuration file 'nodes/pve/qemu-server/100.conf' does not exist".
var vmNotFoundRE = regexp.MustCompile(`Configuration file '[^']*/qemu-server/\d+\.conf' does not exist`)

// A restore or create over an existing ID fails with HTTP 500 before any
// task starts: "unable to restore VM 100 - VM 100 already exists on node
// 'pve'", or "CT 100 already exists ..." when a container holds the ID.
var vmExistsRE = regexp.MustCompile(`\b(VM|CT) \d+ already exists`)

// APIError is an HTTP error answer from the API. Message is Proxmox's own
// text: the JSON "message" field if present, else the HTTP reason phrase,
// where Proxmox puts it too.
type APIError struct {
	Method     string
	Path       string // below /api2/json
	StatusCode int
	Message    string
	Errors     map[string]string // per-parameter messages, for HTTP 400
}

func newAPIError(what string, p *proxmox.APIError) *APIError {
	e := &APIError{Method: p.Method, Path: p.Path, StatusCode: p.StatusCode, Message: strings.TrimSpace(p.Message), Errors: p.Errors}
	if _, rest, ok := strings.Cut(p.Path, "/api2/json"); ok {
		e.Path = rest
	}
	if e.Method == "" || e.Path == "" {
		e.Method, e.Path, _ = strings.Cut(what, " ")
	}
	return e
}

// Error gives Proxmox's message, with a hint for 401 and 403.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pve: %s %s: %d", e.Method, e.Path, e.StatusCode)
	if e.Message != "" {
		b.WriteString(" " + e.Message)
	}
	if len(e.Errors) > 0 {
		keys := make([]string, 0, len(e.Errors))
		for k := range e.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString(" (")
		for i, k := range keys {
			if i > 0 {
				b.WriteString("; ")
			}
			fmt.Fprintf(&b, "%s: %s", k, strings.TrimSpace(e.Errors[k]))
		}
		b.WriteString(")")
	}
	switch e.StatusCode {
	case http.StatusUnauthorized:
		b.WriteString("; check the API token (USER@REALM!TOKENID=SECRET), and that it has not expired")
	case http.StatusForbidden:
		b.WriteString("; the token lacks a privilege (a token with privilege separation needs its own permissions)")
	}
	return b.String()
}

// Is lets errors.Is match the sentinels that Proxmox expresses through
// status codes and message text.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	case ErrVMNotFound:
		return e.StatusCode == http.StatusInternalServerError && vmNotFoundRE.MatchString(e.Message)
	case ErrVMExists:
		return e.StatusCode == http.StatusInternalServerError && vmExistsRE.MatchString(e.Message)
	}
	return false
}

// TaskError reports a task that stopped with an exit status other than OK
// or WARNINGS. It unwraps to ErrTaskFailed.
type TaskError struct {
	UPID       UPID
	ExitStatus string   // Proxmox's message, e.g. "unable to restore VM 100 - ..."
	Log        []string // the last lines of the task log
	LogErr     error    // why Log is empty, if reading it failed
}

// Error gives the exit status, then the log tail on further lines.
func (e *TaskError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pve: task %s", e.UPID.Type)
	if e.UPID.ID != "" {
		fmt.Fprintf(&b, " %s", e.UPID.ID)
	}
	fmt.Fprintf(&b, " on %s failed: %s", e.UPID.Node, e.ExitStatus)
	if len(e.Log) > 0 {
		b.WriteString("\ntask log (last lines):")
		for _, l := range e.Log {
			b.WriteString("\n  " + l)
		}
	}
	return b.String()
}

// Unwrap returns ErrTaskFailed, for errors.Is.
func (e *TaskError) Unwrap() error { return ErrTaskFailed }
