package pvesim

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/vmatool/vmatool/internal/pve/pvesim/qmrestore"
)

// FailConfig makes the next config update of vmid (POST
// /nodes/{node}/qemu/{vmid}/config) fail inside its task with msg, e.g.
// "lvcreate 'pve/vm-100-disk-1' error: Volume group "pve" has
// insufficient free space"; nothing is changed.
func (s *Server) FailConfig(vmid int, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failConfig == nil {
		s.failConfig = map[int]string{}
	}
	s.failConfig[vmid] = msg
}

var (
	netConfigKeyRE = regexp.MustCompile(`^net([0-9]|[12][0-9]|3[01])$`)
	// netModelRE is a net value's first item, MODEL or MODEL=MAC
	// (qemu-server src/PVE/QemuServer/Network.pm $net_fmt).
	netModelRE = regexp.MustCompile(`^(e1000|e1000-82540em|e1000-82544gc|e1000-82545em|e1000e|i82551|i82557b|i82559er|ne2k_isa|ne2k_pci|pcnet|rtl8139|virtio|vmxnet3)(=([0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}))?$`)
)

// updateConfig is update_vm_api's POST form (qemu-server
// src/PVE/API2/Qemu.pm): the VM must exist and not be locked, and each new
// disk's storage must exist and hold images, checked up front; the task
// then creates each new disk given as "STORAGE:SIZE" as create_disks does
// (qmrestore.CreateDisk, shared with the stand-in node's qm set) and gives
// each network device without a MAC address one (parse_net), written back
// into the config.
func (s *Server) updateConfig(n *node, vmid int, p url.Values) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.qemuGuest(n, vmid)
	if g == nil {
		return nil, errorf(http.StatusInternalServerError, "%s", noSuchVMText(n.name, vmid))
	}
	if l := g.config["lock"]; l != "" {
		return nil, errorf(http.StatusInternalServerError, "VM is locked (%s)", l)
	}
	keys := make([]string, 0, len(p))
	for k := range p {
		if k == "digest" || k == "background_delay" {
			continue
		}
		if !driveKeyRE.MatchString(k) && !configKeyRE.MatchString(k) {
			return nil, paramError(k, "property is not defined in schema and the schema does not allow additional properties")
		}
		if netConfigKeyRE.MatchString(k) {
			model, _, _ := strings.Cut(p.Get(k), ",")
			if m, _ := regexp.MatchString(`^model=`, model); !m && !netModelRE.MatchString(model) {
				return nil, paramError(k, "invalid format - format error "+k+".model: value '"+model+"' does not have a value in the enumeration")
			}
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var disks []string
	for _, k := range keys {
		if !driveKeyRE.MatchString(k) {
			continue
		}
		id, ok := qmrestore.IsNewDisk(p.Get(k))
		if !ok {
			continue // an existing volume, taken as it is
		}
		st := n.storage(id)
		switch {
		case id == "":
			return nil, errorf(http.StatusInternalServerError, "no storage ID specified (and no default storage)")
		case st == nil:
			return nil, errorf(http.StatusInternalServerError, "storage '%s' does not exist", id)
		case !st.holds("images"):
			return nil, paramError("storage", "storage '"+id+"' does not support vm images")
		}
		disks = append(disks, k)
	}
	msg, fail := s.failConfig[vmid]
	delete(s.failConfig, vmid)

	t := s.newTask(n.name, "qmconfig", itoa(vmid))
	t.finish = func() (string, []string) {
		if fail {
			return msg, nil
		}
		g := s.qemuGuest(n, vmid)
		if g == nil {
			return noSuchVMText(n.name, vmid), nil
		}
		var log []string
		next := map[string]string{}
		for _, k := range keys {
			next[k] = p.Get(k)
			if netConfigKeyRE.MatchString(k) {
				next[k] = withMAC(next[k])
			}
		}
		// create_disks frees what it made when one disk fails, and the
		// config stays as it was.
		rn := &restoreNode{s: s, n: n, vmid: vmid}
		var made []string
		for _, k := range disks {
			val, line, err := qmrestore.CreateDisk(rn, vmid, k, p.Get(k))
			if err != nil {
				for _, v := range made {
					s.dropVolume(n, v)
				}
				return err.Error(), log
			}
			volid, _, _ := strings.Cut(val, ",")
			made = append(made, volid)
			next[k] = val
			log = append(log, line)
		}
		for k, v := range next {
			g.config[k] = v
		}
		return "OK", log
	}
	return t.upid, nil
}

// withMAC gives a net value without a MAC address one, as parse_net does
// (qemu-server src/PVE/QemuServer/Network.pm): "MODEL=MAC" leads, with
// the cluster's default prefix BC:24:11 (pve-cluster's datacenter.cfg
// mac_prefix) and the rest random.
func withMAC(v string) string {
	items := strings.Split(v, ",")
	model, mac := "", ""
	var rest []string
	for i, it := range items {
		k, val, hasEq := strings.Cut(it, "=")
		switch {
		case k == "model":
			model = val
		case k == "macaddr":
			mac = val
		case i == 0 && netModelRE.MatchString(it):
			model, mac = k, val
			if !hasEq {
				mac = ""
			}
		default:
			rest = append(rest, it)
		}
	}
	if model == "" {
		return v
	}
	if mac == "" {
		b := make([]byte, 3)
		rand.Read(b)
		mac = fmt.Sprintf("BC:24:11:%02X:%02X:%02X", b[0], b[1], b[2])
	}
	return strings.Join(append([]string{model + "=" + mac}, rest...), ",")
}
