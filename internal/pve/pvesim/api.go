package pvesim

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vmatool/vmatool/internal/pve/pvesim/qmrestore"
	"github.com/vmatool/vmatool/vma"
)

// route dispatches an authenticated request. segs are the unescaped path
// segments below /api2/json.
func (s *Server) route(method, path string, segs []string, p url.Values) (any, *apiError) {
	notImpl := errorf(http.StatusNotImplemented, "Method '%s %s' not implemented", method, path)
	switch {
	case method == "GET" && path == "/version":
		return s.versionInfo(), nil
	case method == "GET" && path == "/nodes":
		return s.nodeList(), nil
	case method == "GET" && path == "/cluster/resources":
		return s.clusterResources(p.Get("type"))
	case method == "POST" && path == "/cluster/ha/resources":
		return s.addHA(p)
	case len(segs) < 3 || segs[0] != "nodes":
		return nil, notImpl
	}
	s.mu.Lock()
	n := s.node(segs[1])
	s.mu.Unlock()
	if n == nil {
		// pveproxy proxies to the named node and fails to resolve it.
		return nil, errorf(http.StatusInternalServerError,
			"hostname lookup '%s' failed - failed to get address info for: %s: Name or service not known", segs[1], segs[1])
	}
	if n.offline {
		// pveproxy cannot reach the node to proxy the call to it.
		return nil, errorf(595, "Connection refused")
	}
	rest := segs[2:]
	switch {
	case method == "GET" && len(rest) == 1 && rest[0] == "version":
		return s.versionInfo(), nil
	case method == "POST" && len(rest) == 1 && rest[0] == "qemu":
		return s.createVM(n, p)
	case len(rest) >= 2 && rest[0] == "qemu":
		vmid, err := strconv.Atoi(rest[1])
		if err != nil || vmid < 100 || vmid > 999999999 {
			return nil, paramError("vmid", "value does not look like a valid VM ID")
		}
		sub := strings.Join(rest[2:], "/")
		switch {
		case method == "DELETE" && sub == "":
			return s.destroyVM(n, vmid, p)
		case method == "GET" && sub == "status/current":
			return s.vmStatus(n, vmid)
		case method == "GET" && sub == "config":
			return s.vmConfig(n, vmid)
		case method == "POST" && sub == "config":
			return s.updateConfig(n, vmid, p)
		case method == "POST" && sub == "status/start":
			return s.startVM(n, vmid)
		case method == "POST" && sub == "status/stop":
			return s.stopVM(n, vmid)
		case method == "POST" && sub == "template":
			return s.templateVM(n, vmid)
		case method == "POST" && sub == "agent/ping":
			return s.agentCall(n, vmid, "ping")
		case method == "GET" && sub == "agent/network-get-interfaces":
			return s.agentCall(n, vmid, "network-get-interfaces")
		}
	case method == "GET" && len(rest) == 1 && rest[0] == "storage":
		return s.storageList(n, p.Get("content"))
	case len(rest) >= 3 && rest[0] == "storage":
		switch {
		case method == "GET" && len(rest) == 3 && rest[2] == "status":
			return s.storageStatus(n, rest[1])
		case method == "GET" && len(rest) == 3 && rest[2] == "content":
			return s.content(n, rest[1], p.Get("content"))
		case method == "DELETE" && len(rest) == 4 && rest[2] == "content":
			return s.deleteVolume(n, rest[1], rest[3])
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

func (s *Server) versionInfo() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	major, minor := s.versionParts()
	return map[string]string{"version": s.version, "release": itoa(major) + "." + itoa(minor), "repoid": "c0ffee00"}
}

// versionParts is called with s.mu held.
func (s *Server) versionParts() (int, int) {
	f := strings.SplitN(s.version, ".", 3)
	major, _ := strconv.Atoi(f[0])
	minor := 0
	if len(f) > 1 {
		minor, _ = strconv.Atoi(f[1])
	}
	return major, minor
}

func (s *Server) versionAtLeast(major, minor int) bool {
	ma, mi := s.versionParts()
	return ma > major || ma == major && mi >= minor
}

func (s *Server) nodeList() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, n := range s.nodes {
		out = append(out, map[string]any{"node": n.name, "status": n.status(), "type": "node", "id": "node/" + n.name,
			"mem": n.mem, "maxmem": n.maxMem, "maxcpu": n.maxCPU, "cpu": 0.05, "level": ""})
	}
	return out
}

// clusterResources follows pve-manager PVE/API2/Cluster.pm: type=vm lists
// VMs and containers alike, each only with VM.Audit on it.
func (s *Server) clusterResources(typ string) (any, *apiError) {
	switch typ {
	case "", "vm", "storage", "node", "sdn":
	default:
		return nil, paramError("type", "value '"+typ+"' does not have a value in the enumeration 'vm, storage, node, sdn'")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []map[string]any{}
	if (typ == "" || typ == "vm") && !s.noAudit {
		for _, id := range s.guestIDs() {
			g := s.guests[id]
			row := map[string]any{
				"id": g.typ + "/" + itoa(id), "type": g.typ, "vmid": id, "node": g.node,
				"name": g.config["name"], "status": g.status, "template": boolInt(g.config["template"] == "1"),
				"maxmem": 2 << 30, "maxcpu": 2,
			}
			if st, ok := s.ha["vm:"+itoa(id)]; ok && g.typ == "qemu" {
				row["hastate"] = st
			}
			out = append(out, row)
		}
	}
	if typ == "" || typ == "storage" {
		for _, n := range s.nodes {
			for _, st := range n.storages {
				out = append(out, map[string]any{
					"id": "storage/" + n.name + "/" + st.name, "type": "storage", "storage": st.name, "node": n.name,
					"content": strings.Join(st.content, ","), "disk": st.used, "maxdisk": st.total,
					"status": n.storageStatus(), "plugintype": st.typ, "shared": boolInt(st.shared),
				})
			}
		}
	}
	if typ == "" || typ == "node" {
		for _, n := range s.nodes {
			out = append(out, map[string]any{"id": "node/" + n.name, "type": "node", "node": n.name, "status": n.status(),
				"mem": n.mem, "maxmem": n.maxMem, "maxcpu": n.maxCPU, "cpu": 0.05})
		}
	}
	return out, nil
}

func (n *node) status() string {
	if n.offline {
		return "offline"
	}
	return "online"
}

// storageStatus is what the cluster view says of a node's storages: it
// has no current figures for those of an offline node.
func (n *node) storageStatus() string {
	if n.offline {
		return "unknown"
	}
	return "available"
}

// noSuchVM is how qemu-server's load_config reports a VM that has no
// config on the node (pve-guest-common src/PVE/AbstractConfig.pm).
func noSuchVM(node string, vmid int) *apiError {
	return errorf(http.StatusInternalServerError, "%s", noSuchVMText(node, vmid))
}

func noSuchVMText(node string, vmid int) string {
	return "Configuration file 'nodes/" + node + "/qemu-server/" + itoa(vmid) + ".conf' does not exist"
}

// qemuGuest returns the VM vmid with a config on n. Called with s.mu held.
func (s *Server) qemuGuest(n *node, vmid int) *guest {
	g := s.guests[vmid]
	if g == nil || g.node != n.name || g.typ != "qemu" {
		return nil
	}
	return g
}

func (s *Server) auditDenied(vmid int) *apiError {
	if s.noAudit {
		return errorf(http.StatusForbidden, "Permission check failed (/vms/%d, VM.Audit)", vmid)
	}
	return nil
}

func agentEnabled(conf map[string]string) bool {
	a := conf["agent"]
	return a == "1" || strings.HasPrefix(a, "1,") || strings.Contains(a, "enabled=1")
}

// vmStatus follows qemu-server src/PVE/API2/Qemu.pm vm_status: "agent"
// and "template" only when set.
func (s *Server) vmStatus(n *node, vmid int) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if aerr := s.auditDenied(vmid); aerr != nil {
		return nil, aerr
	}
	g := s.qemuGuest(n, vmid)
	if g == nil {
		return nil, noSuchVM(n.name, vmid)
	}
	_, managed := s.ha["vm:"+itoa(vmid)]
	st := map[string]any{"vmid": vmid, "name": g.config["name"], "status": g.status, "qmpstatus": g.status,
		"ha": map[string]any{"managed": boolInt(managed)}, "cpus": 2, "maxmem": 2 << 30}
	if g.config["template"] == "1" {
		st["template"] = 1
	}
	if l := g.config["lock"]; l != "" {
		st["lock"] = l
	}
	if agentEnabled(g.config) {
		st["agent"] = 1
	}
	return st, nil
}

func (s *Server) vmConfig(n *node, vmid int) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if aerr := s.auditDenied(vmid); aerr != nil {
		return nil, aerr
	}
	g := s.qemuGuest(n, vmid)
	if g == nil {
		return nil, noSuchVM(n.name, vmid)
	}
	conf := map[string]any{}
	for k, v := range g.config {
		conf[k] = v
	}
	if g.config["template"] == "1" {
		conf["template"] = 1
	}
	return conf, nil
}

// The parameters POST /nodes/{node}/qemu takes besides the VM's config
// keys (qemu-server src/PVE/API2/Qemu.pm create_vm).
var createParams = map[string]bool{"vmid": true, "archive": true, "storage": true, "force": true, "unique": true,
	"start": true, "pool": true, "bwlimit": true, "live-restore": true, "ha-managed": true}

var (
	driveKeyRE = regexp.MustCompile(`^(scsi|virtio|sata|ide)\d+$|^efidisk0$|^tpmstate0$`)
	// configKeyRE is every config key create_vm takes besides drives:
	// qemu-server src/PVE/QemuServer.pm $confdesc and
	// $confdesc_cloudinit, less what json_config_properties leaves out
	// (parent, snaptime, vmstate, runningmachine, runningcpu,
	// running-nets-host-mtu, meta).
	configKeyRE = regexp.MustCompile(`^(onboot|autostart|hotplug|reboot|lock|cpulimit|cpuunits|memory|amd-sev|intel-tdx|balloon|shares|keyboard|name|scsihw|description|ostype|boot|bootdisk|smp|sockets|cores|numa|hugepages|keephugepages|vcpus|acpi|agent|kvm|tdf|localtime|freeze|vga|watchdog|startdate|startup|template|args|tablet|migrate_speed|migrate_downtime|cdrom|cpu|vmstatestorage|machine|arch|smbios1|protection|bios|vmgenid|hookscript|ivshmem|audio0|spice_enhancements|tags|rng0|affinity|allow-ksm|citype|ciuser|cipassword|ciupgrade|cicustom|searchdomain|nameserver|sshkeys|numa[0-7]|virtiofs\d|(net|ipconfig)([0-9]|[12][0-9]|3[01])|serial[0-3]|parallel[0-2]|hostpci([0-9]|1[0-5])|usb([0-9]|1[0-3])|unused\d+)$`)
)

// createVM is create_vm of qemu-server src/PVE/API2/Qemu.pm: parameter
// checks first (pve-common src/PVE/JSONSchema.pm messages), then a restore
// with archive, else a create.
func (s *Server) createVM(n *node, p url.Values) (any, *apiError) {
	vmidS := p.Get("vmid")
	vmid, err := strconv.Atoi(vmidS)
	switch {
	case vmidS == "":
		return nil, paramError("vmid", "property is missing and it is not optional")
	case err != nil || vmid < 100 || vmid > 999999999:
		return nil, paramError("vmid", "value does not look like a valid VM ID")
	}
	for _, k := range []string{"force", "unique", "start", "live-restore", "ha-managed"} {
		if v := p.Get(k); v != "" && v != "0" && v != "1" {
			return nil, paramError(k, "type check ('boolean') failed - got '"+v+"'")
		}
	}
	if p.Get("force") != "" && p.Get("archive") == "" {
		return nil, paramError("archive", "missing property required by 'force'")
	}
	for k := range p {
		if !createParams[k] && !driveKeyRE.MatchString(k) && !configKeyRE.MatchString(k) {
			return nil, paramError(k, "property is not defined in schema and the schema does not allow additional properties")
		}
	}
	if p.Get("archive") != "" {
		return s.restore(n, vmid, p)
	}
	return s.create(n, vmid, p)
}

// existsError is pve-cluster src/PVE/Cluster.pm check_vmid_unused, under
// qemu-server's "unable to restore VM N -" or "unable to create VM N -".
// Called with s.mu held.
func (s *Server) existsError(emsg string, g *guest) *apiError {
	kind := "VM"
	if g.typ == "lxc" {
		kind = "CT"
	}
	return errorf(http.StatusInternalServerError, "%s %s %d already exists on node '%s'", emsg, kind, g.vmid, g.node)
}

// restore follows qemu-server src/PVE/API2/Qemu.pm create_vm with an
// archive: the "already exists" refusal and the config lock come before
// the task; "vm is running", a bad storage and the archive's own errors
// come inside it, where package qmrestore does the restore. A failed
// restore removes the lock and leaves the config (pve-guest-common's
// create_and_lock_config wrote it): as it was when the failure came before
// the backup hints passed, "memory: 128" after (qemu-server
// src/PVE/QemuServer.pm restore_vma_archive).
func (s *Server) restore(n *node, vmid int, p url.Values) (any, *apiError) {
	for k := range p {
		if driveKeyRE.MatchString(k) {
			return nil, paramError(k, "option conflicts with option 'archive'")
		}
	}
	req := Restore{VMID: vmid, Node: n.name, Archive: p.Get("archive"), Storage: p.Get("storage"),
		Force: p.Get("force") == "1", Unique: p.Get("unique") == "1", Start: p.Get("start") == "1"}
	emsg := "unable to restore VM " + itoa(vmid) + " -"

	s.mu.Lock()
	defer s.mu.Unlock()
	store, _, _ := strings.Cut(req.Archive, ":")
	st := n.storage(store)
	if st == nil {
		return nil, errorf(http.StatusInternalServerError, "storage '%s' does not exist", store)
	}
	vol, _ := s.findVolume(n.name, req.Archive)
	if vol == nil {
		return nil, errorf(http.StatusInternalServerError, "can't find file '%s'", req.Archive)
	}
	req.Path = volumePath(st, req.Archive)
	g := s.guests[vmid]
	existed := g != nil
	if existed {
		if !req.Force || g.typ != "qemu" || g.node != n.name {
			return nil, s.existsError(emsg, g)
		}
		if l := g.config["lock"]; l != "" {
			return nil, errorf(http.StatusInternalServerError, "%s VM is locked (%s)", emsg, l)
		}
	} else {
		g = &guest{vmid: vmid, typ: "qemu", node: n.name, status: "stopped", config: map[string]string{}}
		s.guests[vmid] = g
	}
	g.config["lock"] = "create"
	fail, willFail := s.failures[vmid]
	delete(s.failures, vmid)

	t := s.newTask(n.name, "qmrestore", itoa(vmid))
	t.finish = func() (string, []string) {
		// remove_lock takes the lock off the config create_and_lock_config
		// made; restore_vma_archive may have replaced it with "memory:
		// 128", which has none.
		fails := func(exit string, log []string) (string, []string) {
			delete(g.config, "lock")
			return exit, append(log, "error before or during data restore, some or all disks were not completely restored. VM "+
				itoa(vmid)+" state is NOT cleaned up.")
		}
		if g.status == "running" {
			return fails(emsg+" vm is running", nil)
		}
		archive, closer, cmd, err := openArchive(st, vol, req.Path, t.pid)
		if err != nil {
			return fails(err.Error(), nil)
		}
		defer closer.Close()
		log := []string{"restore vma archive: " + cmd}
		// restore_merge_config: the request's own config keys win
		// (qemu-server src/PVE/API2/Qemu.pm passes them as override_conf).
		override := map[string]string{}
		for k := range p {
			if !createParams[k] && configKeyRE.MatchString(k) {
				override[k] = p.Get(k)
			}
		}
		_, err = qmrestore.Restore(context.Background(), archive, &restoreNode{s: s, n: n, g: g, vmid: vmid}, qmrestore.Options{
			VMID: vmid, Storage: req.Storage, Unique: req.Unique, Override: override, Command: cmd,
			Output: func(line string) { log = append(log, line) },
			AfterHeader: func(*vma.Header) error {
				if willFail {
					log = append(log, fail.log...)
					return errors.New(fail.exitStatus)
				}
				if s.onRestore == nil {
					return nil
				}
				s.mu.Unlock()
				defer s.mu.Lock()
				return s.onRestore(req)
			},
		})
		if err != nil {
			return fails(err.Error(), log)
		}
		if req.Start {
			log = append(log, s.autostart(g)...)
		}
		return "OK", log
	}
	return t.upid, nil
}

// autostart is the "start" option of create_vm: a failed start is only a
// warning, the task still ends OK. Called with s.mu held.
func (s *Server) autostart(g *guest) []string {
	log := []string{"Execute autostart"}
	if msg, ok := s.failStart[g.vmid]; ok {
		return append(log, msg)
	}
	g.status, g.started = "running", time.Now()
	return log
}

// importNeeds are the options qemu-server src/PVE/API2/Qemu.pm
// check_drive_param requires of an EFI disk or TPM state with import-from.
var importNeeds = map[string][]string{"efidisk0": {"efitype", "pre-enrolled-keys"}, "tpmstate0": {"version"}}

var newDiskRE = regexp.MustCompile(`^(([^/:\s]+):)?(\d+(\.\d+)?)$`)

// importRE is a volume name of content type import
// (pve-storage src/PVE/Storage.pm IMPORT_EXT_RE_1, SAFE_CHAR_CLASS_RE).
var importRE = regexp.MustCompile(`^import/([a-zA-Z0-9\-.+=_]+\.(ova|ovf|qcow2|raw|vmdk))$`)

type importDisk struct {
	key, opts string
	target    *storage
	src       string
	srcStore  *storage
	format    string
}

// create follows create_vm without an archive (qemu-server
// src/PVE/API2/Qemu.pm): a disk "STORAGE:0,import-from=SOURCE" is checked
// up front for its syntax, the source's content type and the target's
// images content; whether the source exists is found out in the task. A
// failed create removes its config and disks.
func (s *Server) create(n *node, vmid int, p url.Values) (any, *apiError) {
	emsg := "unable to create VM " + itoa(vmid) + " -"
	s.mu.Lock()
	defer s.mu.Unlock()
	var imports []importDisk
	plain := map[string]string{}
	for k := range p {
		if !driveKeyRE.MatchString(k) {
			continue
		}
		file, opts, _ := strings.Cut(p.Get(k), ",")
		src := ""
		var kept []string
		for _, o := range strings.Split(opts, ",") {
			if v, ok := strings.CutPrefix(o, "import-from="); ok {
				src = v
			} else if o != "" {
				kept = append(kept, o)
			}
		}
		m := newDiskRE.FindStringSubmatch(file)
		if src != "" && (m == nil || m[3] != "0") {
			return nil, paramError(k, "'import-from' requires special syntax - use <storage ID>:0,import-from=<source>")
		}
		// check_drive_param: an imported EFI disk or TPM state must say
		// what it is; the defaults of an existing drive do not apply.
		if src != "" {
			for _, need := range importNeeds[k] {
				if !slices.ContainsFunc(kept, func(o string) bool { return strings.HasPrefix(o, need+"=") }) {
					return nil, paramError(k, "need to specify '"+need+"' when using 'import-from'")
				}
			}
		}
		if m == nil {
			continue // an existing volume, taken as it is
		}
		id := m[2]
		if id == "" {
			id = p.Get("storage")
		}
		if id == "" {
			return nil, errorf(http.StatusInternalServerError, "no storage ID specified (and no default storage)")
		}
		tst := n.storage(id)
		if tst == nil {
			return nil, errorf(http.StatusInternalServerError, "storage '%s' does not exist", id)
		}
		if !tst.holds("images") {
			return nil, paramError("storage", "storage '"+id+"' does not support vm images")
		}
		if src == "" {
			plain[k] = id + ":" + m[3] + "," + strings.Join(kept, ",")
			continue
		}
		srcStore, srcName, ok := strings.Cut(src, ":")
		if !ok {
			// Only root@pam may name files by path; a token never can
			// (pve-storage src/PVE/Storage.pm check_volume_access).
			return nil, errorf(http.StatusForbidden, "Permission check failed (only root can use an absolute path)")
		}
		sst := n.storage(srcStore)
		if sst == nil {
			return nil, errorf(http.StatusInternalServerError, "storage '%s' does not exist", srcStore)
		}
		vtype, _, _ := strings.Cut(srcName, "/")
		if vtype != "import" && vtype != "images" {
			return nil, paramError(k, src+" has wrong type '"+vtype+"' - needs to be 'images' or 'import'")
		}
		format := "raw"
		if vtype == "import" {
			im := importRE.FindStringSubmatch(srcName)
			if im == nil {
				return nil, errorf(http.StatusInternalServerError, "unable to parse directory volume name '%s'", srcName)
			}
			format = im[2]
		}
		imports = append(imports, importDisk{key: k, opts: strings.Join(kept, ","), target: tst, src: src, srcStore: sst, format: format})
	}
	if g := s.guests[vmid]; g != nil {
		return nil, s.existsError(emsg, g)
	}
	g := &guest{vmid: vmid, typ: "qemu", node: n.name, status: "stopped", config: map[string]string{"lock": "create"}}
	s.guests[vmid] = g
	start := p.Get("start") == "1"

	t := s.newTask(n.name, "qmcreate", itoa(vmid))
	t.finish = func() (string, []string) {
		var log []string
		var made []string
		fail := func(msg string) (string, []string) {
			for _, volid := range made {
				s.dropVolume(n, volid)
			}
			delete(s.guests, vmid)
			return emsg + " " + msg, log
		}
		conf := map[string]string{}
		for k := range p {
			if !createParams[k] {
				conf[k] = p.Get(k)
			}
		}
		rn := &restoreNode{s: s, n: n, vmid: vmid}
		for _, im := range imports {
			v, _ := s.findVolume(n.name, im.src)
			if v == nil {
				return fail("could not get size of " + im.src)
			}
			data := v.Data
			if data == nil && im.srcStore.dir != "" {
				data, _ = readDirVolume(im.srcStore, im.src)
			}
			if msg := checkImage(im.format, volumePath(im.srcStore, im.src), data); msg != "" {
				return fail(msg)
			}
			data, err := convertImage(im.format, data)
			if err != nil {
				return fail("cannot import from '" + im.src + "' - " + err.Error())
			}
			volid := diskVolID(im.target, vmid, qmrestore.FreeDisk(rn, im.target.typ, im.target.name, vmid), "raw")
			size := qmrestore.AllocSize(im.target.typ, int64(len(data)))
			im.target.vols[volid] = &Volume{VolID: volid, Content: "images", Format: "raw", Size: size, VMID: vmid,
				CTime: time.Now().Unix(), Data: append([]byte(nil), data...)}
			made = append(made, volid)
			val := volid
			if im.opts != "" {
				val += "," + im.opts
			}
			conf[im.key] = val + ",size=" + qmrestore.FormatSize(size)
			log = append(log, "transferred "+itoa(len(data))+" of "+itoa(len(data))+" bytes (100.00%)",
				im.key+": successfully created disk '"+conf[im.key]+"'")
		}
		plainKeys := make([]string, 0, len(plain))
		for k := range plain {
			plainKeys = append(plainKeys, k)
		}
		slices.Sort(plainKeys)
		for _, k := range plainKeys {
			val, line, err := qmrestore.CreateDisk(rn, vmid, k, strings.TrimSuffix(plain[k], ","))
			if err != nil {
				return fail(err.Error())
			}
			volid, _, _ := strings.Cut(val, ",")
			made = append(made, volid)
			conf[k] = val
			log = append(log, line)
		}
		for k, v := range conf {
			if netConfigKeyRE.MatchString(k) {
				conf[k] = withMAC(v)
			}
		}
		if conf["boot"] == "" {
			for _, k := range []string{"scsi0", "virtio0", "sata0", "ide0"} {
				if conf[k] != "" {
					conf["boot"] = "order=" + k
					break
				}
			}
		}
		conf["smbios1"] = "uuid=6f1c3c2e-0000-4000-8000-" + strings.Repeat("0", 12-len(itoa(vmid))) + itoa(vmid)
		g.config = conf
		if start {
			log = append(log, s.autostart(g)...)
		}
		return "OK", log
	}
	return t.upid, nil
}

// destroyVM follows qemu-server src/PVE/API2/Qemu.pm destroy_vm: the
// config, protection, HA and running checks come first, the lock check and
// removal inside the task.
func (s *Server) destroyVM(n *node, vmid int, p url.Values) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.qemuGuest(n, vmid)
	if g == nil {
		return nil, noSuchVM(n.name, vmid)
	}
	purge := p.Get("purge") == "1"
	sid := "vm:" + itoa(vmid)
	_, managed := s.ha[sid]
	switch {
	case g.config["protection"] == "1":
		return nil, errorf(http.StatusInternalServerError, "can't remove VM %d - protection mode enabled", vmid)
	case managed && !purge:
		return nil, errorf(http.StatusInternalServerError, "unable to remove VM %d - used in HA resources and purge parameter not set.", vmid)
	case g.status == "running":
		return nil, errorf(http.StatusInternalServerError, "VM %d is running - destroy failed", vmid)
	}
	unreferenced := p.Get("destroy-unreferenced-disks") == "1"
	t := s.newTask(n.name, "qmdestroy", itoa(vmid))
	t.finish = func() (string, []string) {
		if s.guests[vmid] != g {
			return noSuchVMText(n.name, vmid), nil
		}
		if l := g.config["lock"]; l != "" {
			return "VM is locked (" + l + ")", nil
		}
		var log []string
		for _, v := range g.config {
			volid, _, _ := strings.Cut(v, ",")
			if s.dropVolume(n, volid) {
				log = append(log, "Removed volume '"+volid+"'")
			}
		}
		if unreferenced {
			s.removeVolumesOf(n, vmid)
		}
		if purge {
			log = append(log, "purging VM "+itoa(vmid)+" from related configurations..")
			if managed {
				delete(s.ha, sid)
				delete(s.haGroup, sid)
				log = append(log, "NOTE: removed VM "+itoa(vmid)+" from HA resource configuration.")
			}
		}
		delete(s.guests, vmid)
		return "OK", log
	}
	return t.upid, nil
}

// startVM follows vm_start in qemu-server src/PVE/API2/Qemu.pm: nothing
// is checked before the task, and an HA-managed VM gets an "hastart" task
// that asks the HA manager instead.
func (s *Server) startVM(n *node, vmid int) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if upid, ok := s.haRequest(n, vmid, "start"); ok {
		return upid, nil
	}
	t := s.newTask(n.name, "qmstart", itoa(vmid))
	t.finish = func() (string, []string) {
		g := s.qemuGuest(n, vmid)
		switch {
		case g == nil:
			return noSuchVMText(n.name, vmid), nil
		case g.config["lock"] != "":
			return "VM is locked (" + g.config["lock"] + ")", nil
		case g.config["template"] == "1":
			return "you can't start a vm if it's a template", nil
		case g.status == "running":
			return "VM " + itoa(vmid) + " already running", nil
		}
		if msg, ok := s.failStart[vmid]; ok {
			return msg, nil
		}
		g.status, g.started = "running", time.Now()
		return "OK", nil
	}
	return t.upid, nil
}

// haRequest answers a start or stop of an HA-managed VM as qemu-server
// does: an "hastart"/"hastop" task that asks the HA manager, which sets the
// resource's state and, in time, the VM's. ok is false for a VM the HA
// manager does not manage. The caller holds s.mu.
func (s *Server) haRequest(n *node, vmid int, action string) (upid string, ok bool) {
	sid := "vm:" + itoa(vmid)
	if _, ok := s.ha[sid]; !ok {
		return "", false
	}
	t := s.newTask(n.name, "ha"+action, itoa(vmid))
	t.finish = func() (string, []string) {
		s.ha[sid] = map[string]string{"start": "started", "stop": "stopped"}[action]
		if g := s.qemuGuest(n, vmid); g != nil {
			switch {
			case action == "stop":
				g.status = "stopped"
			case g.status != "running":
				g.status, g.started = "running", time.Now()
			}
		}
		return "OK", []string{"Requesting HA " + action + " for VM " + itoa(vmid)}
	}
	return t.upid, true
}

// stopVM follows vm_stop in qemu-server src/PVE/API2/Qemu.pm: an
// HA-managed VM gets an "hastop" task that asks the HA manager; otherwise
// a missing VM fails up front and a stopped one stops again without
// complaint.
func (s *Server) stopVM(n *node, vmid int) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if upid, ok := s.haRequest(n, vmid, "stop"); ok {
		return upid, nil
	}
	if s.qemuGuest(n, vmid) == nil {
		return nil, noSuchVM(n.name, vmid)
	}
	t := s.newTask(n.name, "qmstop", itoa(vmid))
	t.finish = func() (string, []string) {
		g := s.qemuGuest(n, vmid)
		if g == nil {
			return noSuchVMText(n.name, vmid), nil
		}
		g.status = "stopped"
		return "OK", nil
	}
	return t.upid, nil
}

// templateVM follows qemu-server src/PVE/API2/Qemu.pm template: the
// checks run before the task and again inside it, and only the task
// writes "template: 1".
func (s *Server) templateVM(n *node, vmid int) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	check := func() string {
		g := s.qemuGuest(n, vmid)
		switch {
		case g == nil:
			return noSuchVMText(n.name, vmid)
		case g.config["lock"] != "":
			return "VM is locked (" + g.config["lock"] + ")"
		case g.config["template"] == "1":
			return "you can't convert a template to a template"
		case g.status == "running":
			return "you can't convert a VM to template if VM is running"
		}
		return ""
	}
	if msg := check(); msg != "" {
		return nil, errorf(http.StatusInternalServerError, "%s", msg)
	}
	t := s.newTask(n.name, "qmtemplate", itoa(vmid))
	t.finish = func() (string, []string) {
		if msg, ok := s.failTmpl[vmid]; ok {
			delete(s.failTmpl, vmid)
			return msg, nil
		}
		if msg := check(); msg != "" {
			return msg, nil
		}
		s.guests[vmid].config["template"] = "1"
		return "OK", nil
	}
	return t.upid, nil
}

// agentCall answers the guest agent endpoints as qemu-server
// src/PVE/QemuServer/Agent.pm checks them: configured, VM running, agent
// answering; results come wrapped in {"result": ...}
// (src/PVE/API2/Qemu/Agent.pm).
func (s *Server) agentCall(n *node, vmid int, cmd string) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.qemuGuest(n, vmid)
	a := s.agents[vmid]
	switch {
	case g == nil:
		return nil, noSuchVM(n.name, vmid)
	case !agentEnabled(g.config):
		return nil, errorf(http.StatusInternalServerError, "No QEMU guest agent configured")
	case g.status != "running":
		return nil, errorf(http.StatusInternalServerError, "VM %d is not running", vmid)
	case a.Never || time.Since(g.started) < a.Delay:
		return nil, errorf(http.StatusInternalServerError, "QEMU guest agent is not running")
	}
	if cmd == "ping" {
		return map[string]any{"result": map[string]any{}}, nil
	}
	ifs := a.Interfaces
	if ifs == nil {
		ifs = []Interface{{Name: "lo", MAC: "00:00:00:00:00:00", IPs: []string{"127.0.0.1/8", "::1/128"}},
			{Name: "eth0", MAC: "bc:24:11:00:00:01", IPs: []string{"192.0.2.10/24"}}}
	}
	return map[string]any{"result": AgentInterfaces(ifs)}, nil
}

// GuestInterface is one interface in the guest agent's answer to
// network-get-interfaces, with its keys in the order qm guest cmd prints
// them (sorted).
type GuestInterface struct {
	MAC   string         `json:"hardware-address"`
	Addrs []GuestAddress `json:"ip-addresses"`
	Name  string         `json:"name"`
}

// GuestAddress is one address of a GuestInterface.
type GuestAddress struct {
	IP     string `json:"ip-address"`
	Type   string `json:"ip-address-type"` // ipv4 or ipv6
	Prefix int    `json:"prefix"`
}

// AgentInterfaces is what the guest agent answers to
// network-get-interfaces for ifs: the API simulator's agent/... call and
// the SSH stand-in node's qm guest cmd both give it.
func AgentInterfaces(ifs []Interface) []GuestInterface {
	out := []GuestInterface{}
	for _, i := range ifs {
		gi := GuestInterface{MAC: i.MAC, Name: i.Name, Addrs: []GuestAddress{}}
		for _, ip := range i.IPs {
			addr, prefix, _ := strings.Cut(ip, "/")
			pl, _ := strconv.Atoi(prefix)
			typ := "ipv4"
			if strings.Contains(addr, ":") {
				typ = "ipv6"
			}
			gi.Addrs = append(gi.Addrs, GuestAddress{addr, typ, pl})
		}
		out = append(out, gi)
	}
	return out
}

var sidRE = regexp.MustCompile(`^(?:(vm|ct):)?(\d+)$`)

// addHA follows pve-ha-manager src/PVE/API2/HA/Resources.pm create.
func (s *Server) addHA(p url.Values) (any, *apiError) {
	sid := p.Get("sid")
	if sid == "" {
		return nil, paramError("sid", "property is missing and it is not optional")
	}
	m := sidRE.FindStringSubmatch(sid)
	if m == nil {
		return nil, paramError("sid", "value does not look like a valid ha resource id")
	}
	typ := m[1]
	if typ == "" {
		typ = "vm"
	}
	vmid, _ := strconv.Atoi(m[2])
	sid = typ + ":" + m[2]
	state := p.Get("state")
	switch state {
	case "":
		state = "started"
	case "started", "stopped", "enabled", "disabled", "ignored":
	default:
		return nil, paramError("state", "value '"+state+"' does not have a value in the enumeration 'started, stopped, enabled, disabled, ignored'")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.Get("group") != "" && s.versionAtLeast(9, 0) {
		return nil, errorf(http.StatusInternalServerError, "invalid parameter 'group': ha groups have been migrated to rules")
	}
	g := s.guests[vmid]
	if g == nil || (typ == "vm") != (g.typ == "qemu") {
		return nil, errorf(http.StatusInternalServerError, "resource '%s' does not exist in cluster", sid)
	}
	if _, ok := s.ha[sid]; ok {
		return nil, errorf(http.StatusInternalServerError, "create resource failed: resource ID '%s' already defined", sid)
	}
	s.ha[sid] = state
	if grp := p.Get("group"); grp != "" {
		s.haGroup[sid] = grp
	}
	return nil, nil
}
