package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/vmatool/vmatool/internal/pve"
	"github.com/vmatool/vmatool/internal/remote"
)

// ErrNoNode means no node of the cluster can take a VM that Place was to
// place: none is online with the storage and the space it needs.
var ErrNoNode = errors.New("deploy: no node can take the VM")

// Placement says where Place put a VM, and why.
type Placement struct {
	// From is where the cluster view came from: the API, or pvesh over
	// SSH.
	From string `json:"from"`
	// FreeMem and MaxMem are the chosen node's free and total memory, and
	// FreeDisk the free space on the target storage there, in bytes,
	// less what the VMs placed before this one take.
	FreeMem  uint64 `json:"free-mem"`
	MaxMem   uint64 `json:"max-mem"`
	FreeDisk uint64 `json:"free-disk"`
	// Memory and Disk are what this VM takes: its configured memory and
	// its disks' virtual size, in bytes.
	Memory uint64 `json:"memory"`
	Disk   uint64 `json:"disk"`
	// PassedOver names each other node and why it was not chosen.
	PassedOver []string `json:"passed-over,omitempty"`
}

// Place chooses a node for each target whose Node is NodeAuto, from the
// cluster view (GET /cluster/resources, or pvesh get /cluster/resources
// over SSH for a path that uses SSH): a node that is online, has the
// target's storage available for VM images with room for the VM's disks
// (and, for ViaImport, the import storage; for ViaAPI, the dump storage),
// and of those the one with the most free memory. Targets of one run are
// spread: each VM placed, and each target of the run whose node is given,
// counts against its node's memory and its storage's space before the
// next is placed. Targets that name the same host (or, through the API,
// the same API URL) share one view, read once.
//
// A target placed on another node than its host's goes there over SSH by
// the node's name, keeping the host's user and port: the name must reach
// the node, through the OpenSSH client config (Options.SSHConfig) or DNS,
// as the names of a cluster's nodes usually do.
//
// Place changes the plan, which then shows where each VM goes; Run calls
// it if the caller did not. A target that cannot be placed fails in Run
// with the error Place returned for it (matching ErrNoNode when no node
// fits). Place reads the cluster once per plan: later calls return the
// first call's error.
func (p *Plan) Place(ctx context.Context) error {
	if p.placed {
		return p.placeErrors()
	}
	p.placed = true
	views := map[string]*clusterView{}
	for i := range p.Targets {
		tp := &p.Targets[i]
		if tp.Target.Node != NodeAuto {
			continue
		}
		if key := tp.clusterKey(); views[key] == nil {
			views[key] = readCluster(ctx, tp, p.opts)
		}
	}
	// The targets whose node is known take their share first, so that
	// their order in the plan does not matter.
	for i := range p.Targets {
		tp := &p.Targets[i]
		v := views[tp.clusterKey()]
		if v == nil || v.err != nil || tp.Target.Node == NodeAuto {
			continue
		}
		node := tp.Target.Node
		if node == "" {
			node = v.hostNode
		}
		if st, ok := v.storage(node, tp.Storage); ok {
			v.reserve(node, st, tp)
		}
	}
	for i := range p.Targets {
		tp := &p.Targets[i]
		if tp.Target.Node != NodeAuto {
			continue
		}
		v := views[tp.clusterKey()]
		if v.err != nil {
			tp.placeErr = fmt.Errorf("%s: node auto: reading the cluster's resources (%s): %w", tp.Target.Name, v.from, v.err)
			continue
		}
		if err := v.place(tp); err != nil {
			tp.placeErr = fmt.Errorf("%s: %w", tp.Target.Name, err)
		}
	}
	return p.placeErrors()
}

func (p *Plan) placeErrors() error {
	var errs []error
	for _, tp := range p.Targets {
		if tp.placeErr != nil {
			errs = append(errs, tp.placeErr)
		}
	}
	return errors.Join(errs...)
}

// readsOverSSH says placement reads the cluster with pvesh over SSH: the
// path uses SSH, which also tells the host's own node (uname -n), so
// that a VM placed there keeps the host as it is.
func (tp *TargetPlan) readsOverSSH() bool { return paths[tp.Via].needs.ssh }

// clusterKey identifies the cluster view a target shares with others.
func (tp *TargetPlan) clusterKey() string {
	if tp.readsOverSSH() {
		return "ssh " + tp.Target.Host
	}
	return "api " + tp.Target.apiURL()
}

// clusterView is what one read of the cluster's resources found, and
// what the targets placed so far take of it.
type clusterView struct {
	from     string
	err      error
	nodes    []pve.Node
	storages []pve.Storage
	// hostNode is the node the host is (over SSH).
	hostNode string
	// memTaken is by node; diskTaken by node and storage, or by storage
	// alone for a shared one.
	memTaken, diskTaken map[string]uint64
}

func readCluster(ctx context.Context, tp *TargetPlan, opts Options) *clusterView {
	v := &clusterView{memTaken: map[string]uint64{}, diskTaken: map[string]uint64{}}
	if tp.readsOverSSH() {
		v.from = "pvesh over SSH to " + tp.Target.Host
		v.err = v.readSSH(ctx, &tp.Target, opts)
		// As Run falls back to the API when SSH fails under ViaAuto, so
		// does the placement; a bad host key stops both.
		if sshErr := v.err; sshErr != nil && tp.Fallback != "" &&
			!errors.Is(sshErr, remote.ErrHostKeyMismatch) && !errors.Is(sshErr, remote.ErrHostKeyRevoked) {
			v.nodes, v.storages, v.hostNode = nil, nil, ""
			v.from = fmt.Sprintf("the API at %s, SSH having failed (%v)", tp.Target.apiURL(), sshErr)
			v.err = v.readAPI(ctx, tp)
		}
	} else {
		v.from = "the API at " + tp.Target.apiURL()
		v.err = v.readAPI(ctx, tp)
	}
	slices.SortFunc(v.nodes, func(a, b pve.Node) int { return strings.Compare(a.Name, b.Name) })
	return v
}

func (v *clusterView) readAPI(ctx context.Context, tp *TargetPlan) error {
	var opts []pve.Option
	if tp.Target.TLSFingerprint != "" {
		opts = append(opts, pve.WithTLSFingerprint(tp.Target.TLSFingerprint))
	}
	c, err := pve.New(tp.Target.apiURL(), tp.token, opts...)
	if err != nil {
		return err
	}
	if v.nodes, err = c.ClusterNodes(ctx); err != nil {
		return err
	}
	v.storages, err = c.ClusterStorages(ctx)
	return err
}

// clusterRow is a row of pvesh get /cluster/resources --output-format
// json, of type node or storage (pve-manager PVE/API2/Cluster.pm).
type clusterRow struct {
	Type    string      `json:"type"`
	Node    string      `json:"node"`
	Status  string      `json:"status"`
	Mem     json.Number `json:"mem"`
	MaxMem  json.Number `json:"maxmem"`
	MaxCPU  json.Number `json:"maxcpu"`
	Storage string      `json:"storage"`
	Content string      `json:"content"`
	Disk    json.Number `json:"disk"`
	MaxDisk json.Number `json:"maxdisk"`
	Shared  json.Number `json:"shared"`
	Plugin  string      `json:"plugintype"`
}

func (v *clusterView) readSSH(ctx context.Context, t *Target, opts Options) error {
	cfg, err := sshSettings(t, opts)
	if err != nil {
		return err
	}
	c, err := remote.Dial(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	if v.hostNode, err = c.Hostname(ctx); err != nil {
		return err
	}
	var out bytes.Buffer
	if err := c.Run(ctx, []string{"pvesh", "get", "/cluster/resources", "--output-format", "json"}, nil, &out, io.Discard); err != nil {
		return err
	}
	var rows []clusterRow
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil {
		return fmt.Errorf("pvesh printed something that is not JSON: %v", err)
	}
	for _, r := range rows {
		switch r.Type {
		case "node":
			v.nodes = append(v.nodes, pve.Node{Name: r.Node, Status: r.Status, Mem: number(r.Mem), MaxMem: number(r.MaxMem), MaxCPU: int(number(r.MaxCPU))})
		case "storage":
			total, used := number(r.MaxDisk), number(r.Disk)
			var content []string
			for _, c := range strings.Split(r.Content, ",") {
				if c = strings.TrimSpace(c); c != "" {
					content = append(content, c)
				}
			}
			v.storages = append(v.storages, pve.Storage{Name: r.Storage, Node: r.Node, Type: r.Plugin, Content: content,
				Total: total, Used: used, Avail: total - min(used, total),
				Active: r.Status == "available", Enabled: r.Status != "disabled", Shared: number(r.Shared) == 1})
		}
	}
	return nil
}

// number reads a count pvesh printed; it may print an integer as a
// float.
func number(n json.Number) uint64 {
	f, err := strconv.ParseFloat(n.String(), 64)
	if err != nil || f < 0 {
		return 0
	}
	return uint64(f)
}

func (v *clusterView) storage(node, name string) (pve.Storage, bool) {
	i := slices.IndexFunc(v.storages, func(s pve.Storage) bool { return s.Node == node && s.Name == name })
	if i < 0 {
		return pve.Storage{}, false
	}
	return v.storages[i], true
}

// diskKey is what a VM's disks take space from: a shared storage is one
// pool whichever node sees it.
func diskKey(st pve.Storage) string {
	if st.Shared {
		return st.Name
	}
	return st.Node + "/" + st.Name
}

func (v *clusterView) reserve(node string, st pve.Storage, tp *TargetPlan) {
	v.memTaken[node] += tp.memory
	v.diskTaken[diskKey(st)] += tp.disk
}

func (v *clusterView) freeMem(n pve.Node) uint64 {
	return n.FreeMem() - min(v.memTaken[n.Name], n.FreeMem())
}

func (v *clusterView) freeDisk(st pve.Storage) uint64 {
	return st.Avail - min(v.diskTaken[diskKey(st)], st.Avail)
}

// unfit says why node n cannot take tp's VM, or "" if it can.
func (v *clusterView) unfit(n pve.Node, tp *TargetPlan) string {
	t := &tp.Target
	if n.Status != "online" {
		return n.Status
	}
	need := []struct{ storage, content, what string }{{tp.Storage, "images", "VM images"}}
	switch tp.Via {
	case ViaImport:
		need = append(need, struct{ storage, content, what string }{t.ImportStorage, "import", "import content (import-storage)"})
	case ViaAPI:
		need = append(need, struct{ storage, content, what string }{t.DumpStorage, "backup", "backups (dump-storage)"})
	}
	for _, nd := range need {
		st, ok := v.storage(n.Name, nd.storage)
		switch {
		case !ok:
			return "no storage " + nd.storage
		case !st.Active:
			return "storage " + nd.storage + " not available"
		case !st.Holds(nd.content):
			return "storage " + nd.storage + " takes no " + nd.what
		}
	}
	st, _ := v.storage(n.Name, tp.Storage)
	if free := v.freeDisk(st); free < tp.disk {
		return fmt.Sprintf("%s free on %s, %s needed", humanSize(free), tp.Storage, humanSize(tp.disk))
	}
	return ""
}

// place chooses tp's node, records it in tp and takes the VM's share.
func (v *clusterView) place(tp *TargetPlan) error {
	t := &tp.Target
	best := -1
	why := make([]string, len(v.nodes))
	for i, n := range v.nodes {
		if why[i] = v.unfit(n, tp); why[i] == "" && (best < 0 || v.freeMem(n) > v.freeMem(v.nodes[best])) {
			best = i
		}
	}
	var passed []string
	for i, n := range v.nodes {
		switch {
		case i == best:
		case why[i] != "":
			passed = append(passed, fmt.Sprintf("%s (%s)", n.Name, why[i]))
		default:
			passed = append(passed, fmt.Sprintf("%s (%s free memory)", n.Name, humanSize(v.freeMem(n))))
		}
	}
	if best < 0 {
		if len(v.nodes) == 0 {
			return fmt.Errorf("%w %d: the cluster view (%s) lists no nodes", ErrNoNode, t.VMID, v.from)
		}
		return fmt.Errorf("%w %d (%s of memory, %s of disks on %s): %s", ErrNoNode, t.VMID,
			humanSize(tp.memory), humanSize(tp.disk), tp.Storage, strings.Join(passed, ", "))
	}
	n := v.nodes[best]
	st, _ := v.storage(n.Name, tp.Storage)
	tp.Placement = &Placement{From: v.from, FreeMem: v.freeMem(n), MaxMem: n.MaxMem, FreeDisk: v.freeDisk(st),
		Memory: tp.memory, Disk: tp.disk, PassedOver: passed}
	v.reserve(n.Name, st, tp)
	tp.Node, t.Node = n.Name, n.Name
	if tp.readsOverSSH() && n.Name != v.hostNode {
		t.Host = hostOn(t.Host, n.Name)
		if tp.Fallback != "" {
			tp.Steps[len(tp.Steps)-1] = fallbackStep(t, tp.Fallback)
		}
	}
	return nil
}

// hostOn is host with its host name replaced by node's name, keeping the
// user and port it gives.
func hostOn(host, node string) string {
	h, _ := parseHost(host)
	s := node
	if h.portGiven {
		s = net.JoinHostPort(node, strconv.Itoa(h.port))
	}
	if h.userGiven {
		s = h.user + "@" + s
	}
	return s
}

// configMemory is the memory a qemu-server.conf gives the VM, in bytes:
// "memory: MiB" or "memory: current=MiB,..." (qemu-server 8's
// property string), else Proxmox's default of 512 MiB
// (qemu-server src/PVE/QemuServer/Memory.pm).
func configMemory(conf []byte) uint64 {
	const defaultMiB = 512
	v, ok := configValue(conf, "memory")
	if !ok {
		return defaultMiB << 20
	}
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimPrefix(part, "current=")
		if mib, err := strconv.ParseUint(part, 10, 64); err == nil {
			return mib << 20
		}
	}
	return defaultMiB << 20
}

// agentEnabled says the config enables the QEMU guest agent: "agent: 1"
// or "agent: enabled=1,..." (qemu-server src/PVE/QemuServer/Agent.pm).
func agentEnabled(conf []byte) bool {
	v, _ := configValue(conf, "agent")
	for i, part := range strings.Split(v, ",") {
		if part == "enabled=1" || (i == 0 && part == "1") {
			return true
		}
	}
	return false
}

// configValue is the value of key in the main section of a
// qemu-server.conf (snapshots follow in [sections]).
func configValue(conf []byte, key string) (string, bool) {
	for _, line := range strings.Split(string(conf), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.HasPrefix(line, "[") {
			break
		}
		if m := configLineRE.FindStringSubmatch(line); m != nil && m[1] == key {
			return m[2], true
		}
	}
	return "", false
}

// humanSize shows a byte count for plans and messages.
func humanSize(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n)/unit, 0
	for f >= unit && i < 4 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGTP"[i])
}
