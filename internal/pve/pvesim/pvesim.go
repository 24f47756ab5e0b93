// Package pvesim simulates the parts of the Proxmox VE API that package
// pve uses, over TLS with a self-signed certificate, for tests of pve and
// of the deploy command.
//
// It answers as the real API does where a client can tell: data in a
// {"data": ...} envelope, errors as HTTP status codes whose reason phrase
// is Proxmox's message (plus a "message" field, as newer versions send),
// 401 for a wrong token, a missing VM as a 500 naming its config file,
// restores and starts as tasks with UPIDs that run for a few polls and
// keep a log. Every request is recorded, and failures can be injected.
//
// A storage can be backed by a real directory (WithStorageDir), so a test
// can upload an archive over SSH with package sshtest and then restore it
// through the simulated API.
package pvesim

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// Server is a running simulator. Its exported fields are read-only.
type Server struct {
	URL         string // https://127.0.0.1:port, without /api2/json
	Node        string // the single node's name
	Token       string // the accepted token, USER@REALM!TOKENID=SECRET
	TokenID     string // the token without its secret; tasks' user
	Fingerprint string // SHA-256 of the certificate, colon-separated hex

	// Certificate is the server's self-signed certificate.
	Certificate *x509.Certificate

	ts *httptest.Server

	mu        sync.Mutex
	vms       map[int]*VM
	storages  map[string]*storage
	tasks     map[string]*task
	calls     []Call
	inject    []injected
	failures  map[int]failure // restore failures by VM ID
	onRestore func(Restore) error
	taskPolls int
	nextPID   int
}

// Option configures New.
type Option func(*Server)

// WithNode names the node (default "pve").
func WithNode(name string) Option { return func(s *Server) { s.Node = name } }

// WithToken sets the accepted token (default root@pam!vmatool with a
// random secret).
func WithToken(token string) Option { return func(s *Server) { s.Token = token } }

// WithTaskPolls sets how many status polls a task answers "running"
// before it stops (default 2).
func WithTaskPolls(n int) Option { return func(s *Server) { s.taskPolls = n } }

// WithStorageDir backs storage name with directory dir: its files are the
// storage's backup volumes ("name:backup/<file>"), restores read them and
// DeleteVolume removes them. Files ending in ".part" are not listed.
func WithStorageDir(name, dir string) Option {
	return func(s *Server) { s.storages[name] = &storage{dir: dir, vols: map[string]Volume{}} }
}

// WithRestoreHook calls fn for every restore task before it completes;
// an error makes the task fail with "unable to restore VM N - <error>".
// fn runs on the server's goroutine with the simulator unlocked.
func WithRestoreHook(fn func(Restore) error) Option { return func(s *Server) { s.onRestore = fn } }

// Restore describes a restore request, for WithRestoreHook.
type Restore struct {
	VMID    int
	Archive string // volume ID as given
	Path    string // the archive's file, for directory-backed storages
	Storage string
	Force   bool
	Unique  bool
	Start   bool
}

// VM is a simulated QEMU guest.
type VM struct {
	VMID     int
	Name     string
	Status   string // "running" or "stopped"
	Template bool
	Lock     string
}

// Volume is a simulated storage volume.
type Volume struct {
	VolID string
	Size  int64
	CTime int64
}

// Call is one recorded request.
type Call struct {
	Method      string
	Path        string     // below /api2/json, unescaped
	Params      url.Values // form body for POST and PUT, else the query
	ContentType string
	Authorized  bool
}

type storage struct {
	dir  string
	vols map[string]Volume
}

type injected struct {
	method, path string
	status       int
	message      string
}

type failure struct {
	exitStatus string
	log        []string
}

// New starts a simulator for t and closes it when t ends. Its only node
// holds storage "local" (in memory unless WithStorageDir says otherwise).
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	secret := make([]byte, 16)
	rand.Read(secret)
	s := &Server{
		Node:      "pve",
		Token:     "root@pam!vmatool=" + hex.EncodeToString(secret),
		vms:       map[int]*VM{},
		storages:  map[string]*storage{"local": {vols: map[string]Volume{}}},
		tasks:     map[string]*task{},
		failures:  map[int]failure{},
		taskPolls: 2,
		nextPID:   0x1000,
	}
	for _, o := range opts {
		o(s)
	}
	s.TokenID, _, _ = strings.Cut(s.Token, "=")
	s.ts = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	// Refused handshakes are what the TLS tests provoke; keep them quiet.
	s.ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.ts.StartTLS()
	t.Cleanup(s.ts.Close)
	s.URL = s.ts.URL
	s.Certificate = s.ts.Certificate()
	sum := sha256.Sum256(s.Certificate.Raw)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	s.Fingerprint = strings.Join(parts, ":")
	return s
}

// CertPool returns a pool that trusts the simulator's certificate, for
// tests of CA verification that should succeed.
func (s *Server) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.Certificate)
	return p
}

// AddVM adds or replaces a VM on the node.
func (s *Server) AddVM(vm VM) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if vm.Status == "" {
		vm.Status = "stopped"
	}
	s.vms[vm.VMID] = &vm
}

// VM returns a copy of VM vmid, if it exists.
func (s *Server) VM(vmid int) (VM, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	vm, ok := s.vms[vmid]
	if !ok {
		return VM{}, false
	}
	return *vm, true
}

// AddVolume adds a volume to an in-memory storage, creating the storage
// if needed.
func (s *Server) AddVolume(storageName string, v Volume) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.storages[storageName]
	if st == nil {
		st = &storage{vols: map[string]Volume{}}
		s.storages[storageName] = st
	}
	st.vols[v.VolID] = v
}

// Volumes lists the volume IDs of a storage.
func (s *Server) Volumes(storageName string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, v := range s.listVolumes(storageName) {
		ids = append(ids, v.VolID)
	}
	return ids
}

// FailRestore makes the next restore of vmid start a task that fails with
// exitStatus (e.g. "unable to restore VM 100 - ..."), after logging log.
func (s *Server) FailRestore(vmid int, exitStatus string, log ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[vmid] = failure{exitStatus: exitStatus, log: log}
}

// FailNext makes the next request for method and path (below /api2/json,
// unescaped, e.g. "/nodes/pve/qemu") fail with status and message.
func (s *Server) FailNext(method, path string, status int, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inject = append(s.inject, injected{method, path, status, message})
}

// Calls returns the requests received so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// CallsTo returns the recorded requests for method and path.
func (s *Server) CallsTo(method, path string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if c.Method == method && c.Path == path {
			out = append(out, c)
		}
	}
	return out
}

// apiError is a failed answer: Proxmox's message and, for parameter
// errors, per-parameter messages.
type apiError struct {
	status  int
	message string
	errors  map[string]string
}

func errorf(status int, format string, args ...any) *apiError {
	return &apiError{status: status, message: fmt.Sprintf(format, args...)}
}

// serve authenticates, records, routes and answers one request.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	params := r.Form
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		params = r.PostForm
	}
	path, segs, ok := splitPath(r.URL.EscapedPath())
	authorized := r.Header.Get("Authorization") == "PVEAPIToken="+s.Token

	s.mu.Lock()
	s.calls = append(s.calls, Call{
		Method: r.Method, Path: path, Params: params,
		ContentType: r.Header.Get("Content-Type"), Authorized: authorized,
	})
	var inj *injected
	for i, in := range s.inject {
		if in.method == r.Method && in.path == path {
			inj = &in
			s.inject = append(s.inject[:i], s.inject[i+1:]...)
			break
		}
	}
	s.mu.Unlock()

	switch {
	case !authorized:
		// The real server sends no JSON here, only the reason phrase.
		writeRaw(w, http.StatusUnauthorized, "authentication failure", nil)
	case inj != nil:
		writeError(w, &apiError{status: inj.status, message: inj.message})
	case !ok:
		writeError(w, errorf(http.StatusNotImplemented, "Method '%s %s' not implemented", r.Method, path))
	default:
		data, aerr := s.route(r.Method, path, segs, params)
		if aerr != nil {
			writeError(w, aerr)
			return
		}
		writeData(w, data)
	}
}

// splitPath strips /api2/json and unescapes each segment on its own, so a
// volume ID with an escaped "/" stays one segment.
func splitPath(escaped string) (string, []string, bool) {
	rest, ok := strings.CutPrefix(escaped, "/api2/json")
	if !ok {
		return escaped, nil, false
	}
	var segs []string
	for _, seg := range strings.Split(strings.Trim(rest, "/"), "/") {
		u, err := url.PathUnescape(seg)
		if err != nil {
			return rest, nil, false
		}
		segs = append(segs, u)
	}
	return "/" + strings.Join(segs, "/"), segs, true
}

// writeData answers 200 with data in the envelope; a *withTotal adds the
// top-level "total" that paged endpoints send.
func writeData(w http.ResponseWriter, data any) {
	env := map[string]any{"data": data}
	if wt, ok := data.(withTotal); ok {
		env = map[string]any{"data": wt.data, "total": wt.total}
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	json.NewEncoder(w).Encode(env)
}

type withTotal struct {
	data  any
	total int
}

func writeError(w http.ResponseWriter, e *apiError) {
	env := map[string]any{"data": nil, "message": e.message + "\n"}
	if len(e.errors) > 0 {
		env["errors"] = e.errors
	}
	body, _ := json.Marshal(env)
	writeRaw(w, e.status, e.message, body)
}

// writeRaw writes the response by hand: net/http always uses the
// standard reason phrase, while Proxmox puts its message there.
func writeRaw(w http.ResponseWriter, status int, reason string, body []byte) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		w.WriteHeader(status)
		w.Write(body)
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	reason = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, reason)
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", status, reason)
	fmt.Fprintf(&b, "Content-Type: application/json;charset=UTF-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", len(body))
	b.Write(body)
	buf.Write(b.Bytes())
	buf.Flush()
}
