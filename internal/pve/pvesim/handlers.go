package pvesim

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// route dispatches an authenticated request. segs are the unescaped path
// segments below /api2/json.
func (s *Server) route(method, path string, segs []string, p url.Values) (any, *apiError) {
	notImpl := errorf(http.StatusNotImplemented, "Method '%s %s' not implemented", method, path)
	switch {
	case method == "GET" && path == "/version":
		return map[string]string{"version": "8.2.4", "release": "8.2", "repoid": "faa83925c9641325"}, nil
	case method == "GET" && path == "/nodes":
		return []map[string]any{{"node": s.Node, "status": "online", "type": "node", "id": "node/" + s.Node}}, nil
	case method == "GET" && path == "/cluster/resources":
		return s.clusterResources(p.Get("type")), nil
	case len(segs) < 3 || segs[0] != "nodes":
		return nil, notImpl
	}
	if segs[1] != s.Node {
		return nil, errorf(http.StatusInternalServerError,
			"hostname lookup '%s' failed - failed to get address info for: %s: Name or service not known", segs[1], segs[1])
	}
	rest := segs[2:]
	switch {
	case method == "POST" && len(rest) == 1 && rest[0] == "qemu":
		return s.restore(p)
	case len(rest) >= 3 && rest[0] == "qemu":
		vmid, err := strconv.Atoi(rest[1])
		if err != nil || vmid < 100 {
			return nil, paramError("vmid", "invalid format - value does not look like a valid VM ID")
		}
		switch {
		case method == "GET" && len(rest) == 4 && rest[2] == "status" && rest[3] == "current":
			return s.vmStatus(vmid)
		case method == "POST" && len(rest) == 4 && rest[2] == "status" && rest[3] == "start":
			return s.start(vmid)
		case method == "POST" && len(rest) == 3 && rest[2] == "template":
			return s.template(vmid)
		}
	case len(rest) >= 3 && rest[0] == "storage" && rest[2] == "content":
		switch {
		case method == "GET" && len(rest) == 3:
			return s.content(rest[1], p.Get("content"))
		case method == "DELETE" && len(rest) == 4:
			return s.deleteVolume(rest[1], rest[3])
		}
	case method == "GET" && len(rest) == 3 && rest[0] == "tasks":
		switch rest[2] {
		case "status":
			return s.taskStatus(rest[1])
		case "log":
			return s.taskLog(rest[1], p)
		}
	}
	return nil, notImpl
}

func paramError(name, msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, message: "Parameter verification failed.",
		errors: map[string]string{name: msg}}
}

func noSuchVM(node string, vmid int) *apiError {
	return errorf(http.StatusInternalServerError,
		"Configuration file 'nodes/%s/qemu-server/%d.conf' does not exist", node, vmid)
}

func (s *Server) clusterResources(typ string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	if typ == "" || typ == "node" {
		out = append(out, map[string]any{"id": "node/" + s.Node, "type": "node", "node": s.Node, "status": "online"})
	}
	if typ == "" || typ == "vm" {
		for _, id := range s.vmIDs() {
			vm := s.vms[id]
			out = append(out, map[string]any{
				"id": "qemu/" + strconv.Itoa(id), "type": "qemu", "vmid": id, "node": s.Node,
				"name": vm.Name, "status": vm.Status, "template": boolInt(vm.Template),
			})
		}
	}
	return out
}

func (s *Server) vmIDs() []int {
	ids := make([]int, 0, len(s.vms))
	for id := range s.vms {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *Server) vmStatus(vmid int) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	vm, ok := s.vms[vmid]
	if !ok {
		return nil, noSuchVM(s.Node, vmid)
	}
	st := map[string]any{"vmid": vmid, "name": vm.Name, "status": vm.Status, "qmpstatus": vm.Status}
	if vm.Template {
		st["template"] = 1
	}
	if vm.Lock != "" {
		st["lock"] = vm.Lock
	}
	return st, nil
}

// restore follows qemu-server's create_vm with an archive: parameter
// checks and the "already exists" refusal happen before the task starts,
// "vm is running" inside it.
func (s *Server) restore(p url.Values) (any, *apiError) {
	vmid, err := strconv.Atoi(p.Get("vmid"))
	switch {
	case p.Get("vmid") == "":
		return nil, paramError("vmid", "property is missing and it is not optional")
	case err != nil || vmid < 100 || vmid > 999999999:
		return nil, paramError("vmid", "invalid format - value does not look like a valid VM ID")
	case p.Get("archive") == "":
		return nil, errorf(http.StatusNotImplemented, "creating a VM without an archive is not simulated")
	}
	for _, k := range []string{"force", "unique", "start"} {
		if v := p.Get(k); v != "" && v != "0" && v != "1" {
			return nil, paramError(k, "type check ('boolean') failed - got '"+v+"'")
		}
	}
	req := Restore{
		VMID: vmid, Archive: p.Get("archive"), Storage: p.Get("storage"),
		Force: p.Get("force") == "1", Unique: p.Get("unique") == "1", Start: p.Get("start") == "1",
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	path, ok := s.findVolume(req.Archive)
	if !ok {
		return nil, errorf(http.StatusInternalServerError, "volume '%s' does not exist", req.Archive)
	}
	req.Path = path
	if req.Storage != "" && s.storages[req.Storage] == nil {
		return nil, errorf(http.StatusInternalServerError, "storage '%s' does not exist", req.Storage)
	}
	old, existed := s.vms[vmid]
	if existed && !req.Force {
		return nil, errorf(http.StatusInternalServerError,
			"unable to restore VM %d - VM %d already exists on node '%s'", vmid, vmid, s.Node)
	}
	if !existed {
		s.vms[vmid] = &VM{VMID: vmid, Status: "stopped", Lock: "create"}
	}
	fail, willFail := s.failures[vmid]
	delete(s.failures, vmid)
	emsg := "unable to restore VM " + strconv.Itoa(vmid) + " - "

	shown := path
	if shown == "" {
		_, name, _ := strings.Cut(req.Archive, ":backup/")
		shown = "/var/lib/vz/dump/" + name
	}
	t := s.newTask("qmrestore", strconv.Itoa(vmid))
	t.finish = func() (string, []string) {
		// qemu-server refuses a running VM before it reads the archive.
		if existed && old.Status == "running" {
			return emsg + "vm is running", nil
		}
		log := []string{
			"restore vma archive: zstd -q -d -c " + shown + " | vma extract -v -r /var/tmp/vzdumptmp.fifo - /var/tmp/vzdumptmp",
			"CFG: size: 453 name: qemu-server.conf",
			"DEV: dev_id=1 size: 2147483648 devname: drive-scsi0",
		}
		if willFail {
			return fail.exitStatus, append(log, fail.log...)
		}
		if s.onRestore != nil {
			s.mu.Unlock()
			err := s.onRestore(req)
			s.mu.Lock()
			if err != nil {
				return emsg + err.Error(), log
			}
		}
		return "OK", append(log, "progress 100% (read 2147483648 bytes, duration 1 sec)", "rescan volumes...")
	}
	t.done = func(ok bool) {
		vm := s.vms[vmid]
		if !ok {
			if !existed {
				delete(s.vms, vmid)
			} else if vm != nil {
				vm.Lock = ""
			}
			return
		}
		*vm = VM{VMID: vmid, Name: "restored-" + strconv.Itoa(vmid), Status: "stopped"}
		if req.Start {
			vm.Status = "running"
		}
	}
	return t.upid, nil
}

func (s *Server) start(vmid int) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	vm, ok := s.vms[vmid]
	if !ok {
		return nil, noSuchVM(s.Node, vmid)
	}
	t := s.newTask("qmstart", strconv.Itoa(vmid))
	t.finish = func() (string, []string) {
		switch {
		case vm.Template:
			return "you can't start a vm if it's a template", nil
		case vm.Status == "running":
			return "VM " + strconv.Itoa(vmid) + " already running", nil
		}
		return "OK", nil
	}
	t.done = func(ok bool) {
		if ok {
			vm.Status = "running"
		}
	}
	return t.upid, nil
}

// template converts synchronously, as qemu-server does, and then runs a
// task for the disks.
func (s *Server) template(vmid int) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	vm, ok := s.vms[vmid]
	switch {
	case !ok:
		return nil, noSuchVM(s.Node, vmid)
	case vm.Template:
		return nil, errorf(http.StatusInternalServerError, "you can't convert a template to a template")
	case vm.Status == "running":
		return nil, errorf(http.StatusInternalServerError, "you can't convert a VM to template if VM is running")
	}
	vm.Template = true
	return s.newTask("qmtemplate", strconv.Itoa(vmid)).upid, nil
}

// findVolume resolves a volume ID to a file path (empty for in-memory
// storages). Called with s.mu held.
func (s *Server) findVolume(volid string) (string, bool) {
	store, _, ok := strings.Cut(volid, ":")
	if !ok || s.storages[store] == nil {
		return "", false
	}
	for _, v := range s.listVolumes(store) {
		if v.VolID == volid {
			return s.volumePath(store, volid), true
		}
	}
	return "", false
}

func (s *Server) volumePath(store, volid string) string {
	st := s.storages[store]
	if st == nil || st.dir == "" {
		return ""
	}
	_, name, _ := strings.Cut(volid, ":backup/")
	return filepath.Join(st.dir, name)
}

// listVolumes is called with s.mu held.
func (s *Server) listVolumes(store string) []Volume {
	st := s.storages[store]
	if st == nil {
		return nil
	}
	var vols []Volume
	for _, v := range st.vols {
		vols = append(vols, v)
	}
	if st.dir != "" {
		ents, _ := os.ReadDir(st.dir)
		for _, e := range ents {
			info, err := e.Info()
			if err != nil || !info.Mode().IsRegular() || strings.HasSuffix(e.Name(), ".part") {
				continue
			}
			vols = append(vols, Volume{VolID: store + ":backup/" + e.Name(), Size: info.Size(), CTime: info.ModTime().Unix()})
		}
	}
	sort.Slice(vols, func(i, j int) bool { return vols[i].VolID < vols[j].VolID })
	return vols
}

func (s *Server) content(store, filter string) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.storages[store] == nil {
		return nil, errorf(http.StatusInternalServerError, "storage '%s' does not exist", store)
	}
	out := []map[string]any{}
	if filter != "" && filter != "backup" {
		return out, nil
	}
	for _, v := range s.listVolumes(store) {
		out = append(out, map[string]any{
			"volid": v.VolID, "content": "backup", "format": backupFormat(v.VolID),
			"size": v.Size, "ctime": v.CTime, "vmid": backupVMID(v.VolID),
		})
	}
	return out, nil
}

// backupFormat derives Proxmox's format name ("vma.zst", ...) from a file
// name.
func backupFormat(volid string) string {
	if i := strings.LastIndex(volid, ".vma"); i >= 0 {
		return volid[i+1:]
	}
	return "unknown"
}

// backupVMID reads the VM ID out of vzdump-qemu-<vmid>-<date>.
func backupVMID(volid string) int {
	_, name, _ := strings.Cut(volid, "vzdump-qemu-")
	id, _, _ := strings.Cut(name, "-")
	n, _ := strconv.Atoi(id)
	return n
}

func (s *Server) deleteVolume(store, volid string) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The path segment may be the full volume ID or just its name.
	if !strings.Contains(volid, ":") {
		volid = store + ":" + volid
	}
	if _, ok := s.findVolume(volid); !ok {
		return nil, errorf(http.StatusInternalServerError, "volume '%s' does not exist", volid)
	}
	if p := s.volumePath(store, volid); p != "" {
		if err := os.Remove(p); err != nil {
			return nil, errorf(http.StatusInternalServerError, "removing '%s' failed: %v", volid, err)
		}
	}
	delete(s.storages[store].vols, volid)
	// Like pve-storage, the task's ID is the owning VM, else "image".
	owner := "image"
	if id := backupVMID(volid); id > 0 {
		owner = strconv.Itoa(id)
	}
	return s.newTask("imgdel", owner).upid, nil
}
