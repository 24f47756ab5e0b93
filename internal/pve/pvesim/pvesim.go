// Package pvesim simulates the parts of the Proxmox VE API that vmatool
// uses, over TLS with a self-signed certificate, for tests of package pve
// and of the deploy command.
//
// It answers as a real cluster does where a client can tell, and each
// behaviour names the Proxmox source it follows. In short:
//   - auth failures are 401 without a body (pve-http-server
//     src/PVE/APIServer/AnyEvent.pm); the real server waits about 3 s
//     first, which the simulator skips unless WithAuthDelay asks for it;
//   - errors put the first line of the message in the reason phrase and
//     send {"data":null,"message":"...\n"}, parameter errors are 400
//     "Parameter verification failed." with errors.<param>;
//   - restores, creates, starts, templates, deletions and uploads run as
//     tasks with UPIDs, a status and a log, and fail where the real ones
//     fail: up front or inside the task;
//   - the state a failure leaves is kept: a failed restore leaves the VM's
//     config behind, a failed create does not.
//
// Every request is recorded, failures can be injected, and the state
// (which VMs, configs and volumes exist on which node) can be read.
//
// A storage can be backed by a real directory (WithStorageDir), so a test
// can upload an archive over SSH with package sshtest and then restore it
// through the simulated API. Uploaded, imported and restored volumes are
// kept in memory, byte for byte.
//
// A restore reads its archive as restore_vma_archive does (package
// qmrestore): the VM's config is the archive's, each drive on a new volume
// that holds the disk, on the storage the #qmdump#map line or the request
// names; a POST .../config then applies on top, as on a real node.
//
// Uploaded images are checked as qemu-img info checks an untrusted image
// (a qcow2 must parse and name no backing or data file), and an import
// writes the image's virtual disk onto the new raw volume, as qemu-img
// convert does, so a test can compare it with the source byte for byte.
//
// Known limits: one VM ID maps to one guest, so restoring with force over a
// container, or over a VM on another node, is refused as if force were not
// given; LVM-thin rounds the recorded size of an imported volume up to
// 4 MiB but keeps only the converted bytes; new guests show their final
// status at once, where the real cluster view says "unknown" for a few
// seconds; an archive that is no VMA at all (the tests of package pve
// restore a few placeholder bytes) restores as a VM with one empty 2 GiB
// disk where vma extract would fail on the magic.
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
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a running simulator. Its exported fields are read-only.
type Server struct {
	URL         string // https://127.0.0.1:port, without /api2/json
	Node        string // the first node's name, the one that answers
	Token       string // the accepted token, USER@REALM!TOKENID=SECRET
	TokenID     string // the token without its secret: USER@REALM!TOKENID
	Fingerprint string // SHA-256 of the certificate, colon-separated hex

	// Certificate is the server's self-signed certificate.
	Certificate *x509.Certificate

	ts *httptest.Server

	mu        sync.Mutex
	version   string
	nodes     []*node
	guests    map[int]*guest
	tasks     map[string]*task
	ha        map[string]string // sid → requested state
	haGroup   map[string]string // sid → HA group, where one was given
	calls     []Call
	inject    []injected
	failures  map[int]failure // restore failures by VM ID
	failStart map[int]string
	failTmpl  map[int]string
	// failConfig are config update failures by VM ID (config.go).
	failConfig map[int]string
	agents     map[int]Agent
	onRestore  func(Restore) error
	taskPolls  int
	nextPID    int
	noAudit    bool
	authDelay  time.Duration
}

// Option configures New.
type Option func(*Server)

// NodeSpec describes a simulated node.
type NodeSpec struct {
	Name     string
	MaxMem   uint64 // bytes
	Mem      uint64 // bytes in use
	MaxCPU   int
	Storages []StorageSpec
	// Offline makes the node "offline" in /nodes and the cluster view,
	// whose rows for its storages then say "unknown"
	// (pve-manager PVE/API2/Cluster.pm).
	Offline bool
}

// StorageSpec describes a storage of a node.
type StorageSpec struct {
	Name    string
	Type    string   // "dir", "lvmthin", "zfspool", "nfs", ...
	Content []string // "images", "import", "backup", "iso", "vztmpl", "rootdir"
	Total   uint64   // bytes
	Used    uint64
	Shared  bool
	// Dir, if set, backs the storage's backup volumes with a real
	// directory: its files are "NAME:backup/<file>".
	Dir string
}

// DefaultNode is the node New makes without WithNodes: a fresh install,
// whose "local" does not list import and so takes no disk image uploads
// (pve-manager's installer; `pvesm set local --content ...,import` adds it).
func DefaultNode(name string) NodeSpec {
	return NodeSpec{Name: name, MaxMem: 64 << 30, Mem: 8 << 30, MaxCPU: 16, Storages: []StorageSpec{
		{Name: "local", Type: "dir", Content: []string{"backup", "iso", "vztmpl"}, Total: 100 << 30, Used: 10 << 30},
		{Name: "local-lvm", Type: "lvmthin", Content: []string{"images", "rootdir"}, Total: 400 << 30, Used: 50 << 30},
	}}
}

// WithNodes replaces the default node with these; the first answers the
// API. Nodes may differ in free memory and storages, for placement tests.
func WithNodes(specs ...NodeSpec) Option {
	return func(s *Server) {
		s.nodes = nil
		for _, sp := range specs {
			s.nodes = append(s.nodes, newNode(sp))
		}
	}
}

// WithNode renames the first node (default "pve").
func WithNode(name string) Option { return func(s *Server) { s.nodes[0].name = name } }

// WithToken sets the accepted token (default root@pam!vmatool with a
// random secret).
func WithToken(token string) Option { return func(s *Server) { s.Token = token } }

// WithTaskPolls sets how many status polls a task answers "running"
// before it stops (default 2).
func WithTaskPolls(n int) Option { return func(s *Server) { s.taskPolls = n } }

// WithVersion sets the pve-manager version the nodes report (default
// "8.4.1"). It decides what uploads with content "import" accept.
func WithVersion(v string) Option { return func(s *Server) { s.version = v } }

// WithoutVMAudit makes the token lack VM.Audit: /cluster/resources shows
// it no guests and VM status and config are forbidden, as for a token
// with privilege separation and no VM permissions (pve-manager
// PVE/API2/Cluster.pm filters rows by privilege).
func WithoutVMAudit() Option { return func(s *Server) { s.noAudit = true } }

// WithAuthDelay delays 401 answers by d. pveproxy waits about 3 s
// (pve-http-server src/PVE/APIServer/AnyEvent.pm); tests default to none.
func WithAuthDelay(d time.Duration) Option { return func(s *Server) { s.authDelay = d } }

// WithStorageDir backs storage name of the first node with directory
// dir: its files are the storage's backup volumes ("name:backup/<file>"),
// restores read them and deleting a volume removes its file. Files ending
// in ".part" are not listed. A storage that does not exist yet is made as
// a "dir" storage with content backup.
func WithStorageDir(name, dir string) Option {
	return func(s *Server) {
		n := s.nodes[0]
		st := n.storage(name)
		if st == nil {
			st = newStorage(StorageSpec{Name: name, Type: "dir", Content: []string{"backup"}, Total: 100 << 30})
			n.storages = append(n.storages, st)
		}
		st.dir = dir
		if !st.holds("backup") {
			st.content = append(st.content, "backup")
		}
	}
}

// WithRestoreHook calls fn inside every restore task once the archive's
// header has been read; an error fails the task. fn runs with the
// simulator unlocked.
func WithRestoreHook(fn func(Restore) error) Option { return func(s *Server) { s.onRestore = fn } }

// Restore describes a restore request, for WithRestoreHook.
type Restore struct {
	VMID    int
	Node    string
	Archive string // volume ID as given
	Path    string // the archive's file, for directory-backed storages
	Storage string
	Force   bool
	Unique  bool
	Start   bool
}

// VM is a simulated guest as a test sees it.
type VM struct {
	VMID     int
	Node     string // default: the first node
	Type     string // "qemu" (default) or "lxc"
	Name     string
	Status   string // "running" or "stopped"
	Template bool
	Lock     string
	// Config is the guest's config; Name, Template and Lock mirror its
	// "name", "template" and "lock" keys.
	Config map[string]string
}

// Volume is a simulated storage volume.
type Volume struct {
	VolID   string
	Content string // default "backup"
	Format  string
	Size    int64 // default len(Data)
	CTime   int64
	VMID    int
	Data    []byte
}

// Agent configures the guest agent of a VM.
type Agent struct {
	Delay      time.Duration // answers this long after the VM started
	Never      bool          // never answers
	Interfaces []Interface   // network-get-interfaces; default lo and eth0
}

// Interface is a network interface the guest agent reports.
type Interface struct {
	Name string
	MAC  string
	IPs  []string // CIDR, e.g. "192.0.2.10/24" or "2001:db8::10/64"
}

// Call is one recorded request.
type Call struct {
	Method      string
	Path        string     // below /api2/json, unescaped
	Params      url.Values // query, form or JSON body, or multipart fields
	ContentType string
	Authorized  bool
}

type node struct {
	name     string
	maxMem   uint64
	mem      uint64
	maxCPU   int
	offline  bool
	storages []*storage
}

func newNode(sp NodeSpec) *node {
	n := &node{name: sp.Name, maxMem: sp.MaxMem, mem: sp.Mem, maxCPU: sp.MaxCPU, offline: sp.Offline}
	for _, st := range sp.Storages {
		n.storages = append(n.storages, newStorage(st))
	}
	return n
}

func (n *node) storage(name string) *storage {
	for _, st := range n.storages {
		if st.name == name {
			return st
		}
	}
	return nil
}

type storage struct {
	name, typ   string
	content     []string
	total, used uint64
	shared      bool
	dir         string
	vols        map[string]*Volume
}

func newStorage(sp StorageSpec) *storage {
	return &storage{name: sp.Name, typ: sp.Type, content: append([]string(nil), sp.Content...),
		total: sp.Total, used: sp.Used, shared: sp.Shared, dir: sp.Dir, vols: map[string]*Volume{}}
}

func (st *storage) holds(content string) bool {
	for _, c := range st.content {
		if c == content {
			return true
		}
	}
	return false
}

// guest is a VM or container. config holds every key, including lock,
// name and template.
type guest struct {
	vmid    int
	typ     string
	node    string
	status  string
	started time.Time
	config  map[string]string
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

// New starts a simulator for t and closes it when t ends. Without
// WithNodes it has one node, "pve", made by DefaultNode.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	secret := make([]byte, 16)
	rand.Read(secret)
	s := &Server{
		Token:     "root@pam!vmatool=" + hex.EncodeToString(secret),
		version:   "8.4.1",
		nodes:     []*node{newNode(DefaultNode("pve"))},
		guests:    map[int]*guest{},
		tasks:     map[string]*task{},
		ha:        map[string]string{},
		haGroup:   map[string]string{},
		failures:  map[int]failure{},
		failStart: map[int]string{},
		failTmpl:  map[int]string{},
		agents:    map[int]Agent{},
		taskPolls: 2,
		nextPID:   0x1000,
	}
	for _, o := range opts {
		o(s)
	}
	s.Node = s.nodes[0].name
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

// CertPool returns a pool that trusts the simulator's certificate.
func (s *Server) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.Certificate)
	return p
}

// node finds a node by name. Called with s.mu held.
func (s *Server) node(name string) *node {
	for _, n := range s.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// AddVM adds or replaces a guest.
func (s *Server) AddVM(vm VM) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := &guest{vmid: vm.VMID, typ: vm.Type, node: vm.Node, status: vm.Status, config: map[string]string{}}
	if g.typ == "" {
		g.typ = "qemu"
	}
	if g.node == "" {
		g.node = s.nodes[0].name
	}
	if g.status == "" {
		g.status = "stopped"
	}
	if g.status == "running" {
		g.started = time.Now()
	}
	for k, v := range vm.Config {
		g.config[k] = v
	}
	if vm.Name != "" {
		g.config["name"] = vm.Name
	}
	if vm.Template {
		g.config["template"] = "1"
	}
	if vm.Lock != "" {
		g.config["lock"] = vm.Lock
	}
	s.guests[vm.VMID] = g
}

func (g *guest) export() VM {
	vm := VM{VMID: g.vmid, Node: g.node, Type: g.typ, Status: g.status, Name: g.config["name"],
		Template: g.config["template"] == "1", Lock: g.config["lock"], Config: map[string]string{}}
	for k, v := range g.config {
		vm.Config[k] = v
	}
	return vm
}

// VM returns a copy of guest vmid, if it exists.
func (s *Server) VM(vmid int) (VM, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.guests[vmid]
	if !ok {
		return VM{}, false
	}
	return g.export(), true
}

// VMs returns every guest, by ID.
func (s *Server) VMs() []VM {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []VM
	for _, id := range s.guestIDs() {
		out = append(out, s.guests[id].export())
	}
	return out
}

func (s *Server) guestIDs() []int {
	ids := make([]int, 0, len(s.guests))
	for id := range s.guests {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

// AddVolume adds a volume to storage on the first node, making the
// storage (type dir, content backup) if needed.
func (s *Server) AddVolume(storageName string, v Volume) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[0]
	st := n.storage(storageName)
	if st == nil {
		st = newStorage(StorageSpec{Name: storageName, Type: "dir", Content: []string{"backup"}, Total: 100 << 30})
		n.storages = append(n.storages, st)
	}
	if v.Content == "" {
		v.Content = "backup"
	}
	if v.Size == 0 {
		v.Size = int64(len(v.Data))
	}
	v.Data = append([]byte(nil), v.Data...)
	st.vols[v.VolID] = &v
}

// Volumes lists the volume IDs of a storage of the first node.
func (s *Server) Volumes(storageName string) []string {
	return s.VolumesOn(s.Node, storageName)
}

// VolumesOn lists the volume IDs of a storage of node.
func (s *Server) VolumesOn(nodeName, storageName string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.node(nodeName)
	if n == nil {
		return nil
	}
	var ids []string
	for _, v := range n.listVolumes(storageName) {
		ids = append(ids, v.VolID)
	}
	return ids
}

// VolumeData returns a copy of the bytes of volume volid on node: what
// was uploaded, or what a create imported. Directory-backed volumes are
// read from their file.
func (s *Server) VolumeData(nodeName, volid string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, st := s.findVolume(nodeName, volid)
	if v == nil {
		return nil, false
	}
	if v.Data == nil && st.dir != "" {
		return readDirVolume(st, volid)
	}
	if v.Data == nil && v.Content == "images" {
		return make([]byte, v.Size), true // allocated, never written
	}
	return append([]byte(nil), v.Data...), true
}

// HAResources returns the HA resources by sid ("vm:100") with their
// requested state.
func (s *Server) HAResources() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.ha))
	for k, v := range s.ha {
		out[k] = v
	}
	return out
}

// HAGroup returns the HA group resource sid ("vm:100") was put in, if any.
func (s *Server) HAGroup(sid string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.haGroup[sid]
}

// SetAgent configures the guest agent of VM vmid. The VM still needs
// "agent: 1" in its config for the agent to be reached.
func (s *Server) SetAgent(vmid int, a Agent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.agents[vmid] = a
}

// SetNodeMem sets the memory in use on a node, to change placement.
func (s *Server) SetNodeMem(nodeName string, used uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.node(nodeName); n != nil {
		n.mem = used
	}
}

// FailRestore makes the next restore of vmid fail inside its task, once
// the archive's header was read and its backup hints passed (the config is
// "memory: 128" then, and no volume is allocated yet), with exitStatus
// (e.g. "lvcreate 'pve/vm-100-disk-0' error: ...") after logging log.
func (s *Server) FailRestore(vmid int, exitStatus string, log ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[vmid] = failure{exitStatus: exitStatus, log: log}
}

// FailStart makes starts of vmid fail inside the task with msg, e.g.
// "TASK ERROR: start failed: QEMU exited with code 1".
func (s *Server) FailStart(vmid int, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failStart[vmid] = msg
}

// FailTemplate makes the next template task of vmid fail with msg before
// it marks the config, the way `qm template` fails while exiting 0.
func (s *Server) FailTemplate(vmid int, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failTmpl[vmid] = msg
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
// errors, per-parameter messages. plain answers carry the message as a
// text body, as pveproxy's own errors (outside the API handlers) do.
type apiError struct {
	status  int
	message string
	errors  map[string]string
	plain   bool
}

func errorf(status int, format string, args ...any) *apiError {
	return &apiError{status: status, message: fmt.Sprintf(format, args...)}
}

// paramError is pve-common's raise_param_exc: 400 "Parameter verification
// failed." with the reason under the parameter's name
// (pve-common src/PVE/Exception.pm).
func paramError(name, msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, message: "Parameter verification failed.",
		errors: map[string]string{name: msg}}
}

// authenticated checks the Authorization header the way pve-access-control
// does for tokens: "PVEAPIToken=USER@REALM!TOKENID=SECRET", also with a
// space instead of the first "=", split at the last "=".
func (s *Server) authenticated(h string) (ok, present bool) {
	rest, found := strings.CutPrefix(h, "PVEAPIToken")
	if !found || rest == "" || (rest[0] != '=' && rest[0] != ' ') {
		return false, h != ""
	}
	rest = rest[1:]
	i := strings.LastIndexByte(rest, '=')
	if i < 0 {
		return false, true
	}
	return rest[:i]+"="+rest[i+1:] == s.Token, true
}

// serve authenticates, records, routes and answers one request.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	path, segs, ok := splitPath(r.URL.EscapedPath())
	authorized, present := s.authenticated(r.Header.Get("Authorization"))
	var params url.Values
	var perr *apiError
	upload := authorized && r.Method == http.MethodPost && len(segs) == 5 && segs[0] == "nodes" && segs[2] == "storage" && segs[4] == "upload"
	var up *multipartUpload
	if upload {
		up, perr = readUpload(r)
		if up != nil {
			params = up.params
		}
	} else if authorized {
		params, perr = readParams(r)
	}

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
	delay := s.authDelay
	s.mu.Unlock()

	switch {
	case !authorized:
		// pve-http-server AnyEvent.pm: a failed auth is a PVE::Exception
		// answered with its message as the reason phrase and no body,
		// after a delay; pve-access-control names the cause.
		time.Sleep(delay)
		reason := "No ticket"
		if present {
			reason = "Authentication failed!"
		}
		writeRaw(w, http.StatusUnauthorized, reason, "", nil)
	case inj != nil:
		writeError(w, &apiError{status: inj.status, message: inj.message})
	case perr != nil:
		writeError(w, perr)
	case !ok:
		writeError(w, errorf(http.StatusNotImplemented, "Method '%s %s' not implemented", r.Method, path))
	default:
		var data any
		var aerr *apiError
		if upload {
			data, aerr = s.upload(segs[1], segs[3], up)
		} else {
			data, aerr = s.route(r.Method, path, segs, params)
		}
		if aerr != nil {
			writeError(w, aerr)
			return
		}
		writeData(w, data)
	}
}

// readParams takes the query for GET and DELETE, and the form or JSON
// body for POST and PUT: pve-http-server accepts both encodings.
func readParams(r *http.Request) (url.Values, *apiError) {
	q := r.URL.Query()
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		return q, nil
	}
	ct := r.Header.Get("Content-Type")
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "reading request: %v", err)
	}
	switch {
	case len(bytes.TrimSpace(body)) == 0:
		return q, nil
	case strings.HasPrefix(ct, "application/json"):
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			return nil, errorf(http.StatusBadRequest, "malformed JSON body: %v", err)
		}
		for k, v := range m {
			switch v := v.(type) {
			case string:
				q.Set(k, v)
			case json.Number:
				q.Set(k, v.String())
			case bool:
				// JSON booleans pass the boolean type check
				// (pve-common src/PVE/JSONSchema.pm).
				q.Set(k, map[bool]string{true: "1", false: "0"}[v])
			case nil:
			default:
				return nil, paramError(k, "type check ('string') failed - got "+fmt.Sprintf("%T", v))
			}
		}
		return q, nil
	default:
		f, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "malformed form body: %v", err)
		}
		for k, v := range f {
			q[k] = v
		}
		return q, nil
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

// withTotal adds the top-level "total" that paged endpoints send.
type withTotal struct {
	data  any
	total int
}

func writeData(w http.ResponseWriter, data any) {
	env := map[string]any{"data": data}
	if wt, ok := data.(withTotal); ok {
		env = map[string]any{"data": wt.data, "total": wt.total}
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	json.NewEncoder(w).Encode(env)
}

// writeError answers as pve-http-server's JSON formatter does: the
// message (with its trailing newline) in the body and its first line as
// the reason phrase (pve-http-server src/PVE/APIServer/Formatter/Standard.pm).
func writeError(w http.ResponseWriter, e *apiError) {
	reason, _, _ := strings.Cut(e.message, "\n")
	if e.plain {
		writeRaw(w, e.status, reason, "text/plain", []byte(e.message+"\n"))
		return
	}
	env := map[string]any{"data": nil, "message": e.message + "\n"}
	if len(e.errors) > 0 {
		env["errors"] = e.errors
	}
	body, _ := json.Marshal(env)
	writeRaw(w, e.status, reason, "application/json;charset=UTF-8", body)
}

// writeRaw writes the response by hand: net/http always uses the
// standard reason phrase, while Proxmox puts its message there.
func writeRaw(w http.ResponseWriter, status int, reason, contentType string, body []byte) {
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
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", status, strings.TrimSpace(reason))
	if contentType != "" {
		fmt.Fprintf(&b, "Content-Type: %s\r\n", contentType)
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\nConnection: close\r\n\r\n", len(body))
	b.Write(body)
	buf.Write(b.Bytes())
	buf.Flush()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func itoa(n int) string { return strconv.Itoa(n) }

// Client returns an HTTP client that trusts the simulator, for tests that
// speak to it directly.
func (s *Server) Client() *http.Client { return s.ts.Client() }
