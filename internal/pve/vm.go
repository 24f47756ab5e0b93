package pve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	proxmox "github.com/luthermonson/go-proxmox"
)

// VM status values.
const (
	StatusRunning = "running"
	StatusStopped = "stopped"
)

// VMStatus is the current state of a QEMU guest, from
// GET /nodes/{node}/qemu/{vmid}/status/current.
type VMStatus struct {
	VMID      int
	Name      string
	Status    string // StatusRunning or StatusStopped
	QMPStatus string // finer: "running", "paused", "prelaunch", ...
	Template  bool
	Lock      string // e.g. "create" while a restore runs
	Agent     bool   // the guest agent is enabled in the config
}

// flag decodes the API's 0/1 flags, which may also arrive as strings.
type flag bool

func (f *flag) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(b, `"`))
	*f = s == "1" || s == "true"
	return nil
}

func vmPath(node string, vmid int, rest string) string {
	return "/nodes/" + node + "/qemu/" + strconv.Itoa(vmid) + rest
}

// VMStatus returns the state of VM vmid on node. A VM the node does not
// have yields an error matching ErrVMNotFound.
//
// It uses the generic Get: go-proxmox's VirtualMachine reads the config
// too, and decodes a template flag of 0 as true.
func (c *Client) VMStatus(ctx context.Context, node string, vmid int) (*VMStatus, error) {
	if err := checkNodeVM(node, vmid); err != nil {
		return nil, err
	}
	var raw struct {
		Name      string `json:"name"`
		Status    string `json:"status"`
		QMPStatus string `json:"qmpstatus"`
		Template  flag   `json:"template"`
		Lock      string `json:"lock"`
		Agent     flag   `json:"agent"`
	}
	path := vmPath(node, vmid, "/status/current")
	if err := c.call(ctx, "GET "+path, func(ctx context.Context) error { return c.api.Get(ctx, path, &raw) }); err != nil {
		return nil, err
	}
	return &VMStatus{VMID: vmid, Name: raw.Name, Status: raw.Status, QMPStatus: raw.QMPStatus,
		Template: bool(raw.Template), Lock: raw.Lock, Agent: bool(raw.Agent)}, nil
}

// VMConfig returns the current config of VM vmid as the API shows it, one
// value per key ("memory" → "2048", "scsi0" → "local-lvm:vm-100-disk-0,size=8G").
func (c *Client) VMConfig(ctx context.Context, node string, vmid int) (map[string]string, error) {
	if err := checkNodeVM(node, vmid); err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	path := vmPath(node, vmid, "/config")
	if err := c.call(ctx, "GET "+path, func(ctx context.Context) error { return c.api.Get(ctx, path, &raw) }); err != nil {
		return nil, err
	}
	conf := make(map[string]string, len(raw))
	for k, v := range raw {
		var s string
		if json.Unmarshal(v, &s) != nil {
			s = string(v) // numbers stay as the server wrote them
		}
		conf[k] = s
	}
	return conf, nil
}

// RestoreOptions are the parameters of a restore from a backup archive.
type RestoreOptions struct {
	VMID    int    // the VM to create (or, with Force, overwrite)
	Archive string // volume ID of the archive, e.g. "local:backup/vzdump-qemu-100-....vma.zst"
	Storage string // where the disks go; empty means the archive's original storages
	Force   bool   // overwrite an existing VM with this ID
	Unique  bool   // give the network cards new random MAC addresses
	Start   bool   // start the VM after the restore; a failed start only warns
}

// RestoreVM starts restoring a backup archive into a VM on node (POST
// /nodes/{node}/qemu with archive) and returns the task to wait for.
// Without Force, an existing VM or container makes the call fail with an
// error matching ErrVMExists before any task starts. Once the task has
// started, the VM exists: a failed restore leaves its config behind.
func (c *Client) RestoreVM(ctx context.Context, node string, o RestoreOptions) (UPID, error) {
	if err := checkNodeVM(node, o.VMID); err != nil {
		return UPID{}, err
	}
	if o.Archive == "" {
		return UPID{}, errors.New("pve: RestoreVM: no archive")
	}
	opts := []proxmox.VirtualMachineOption{{Name: "archive", Value: o.Archive}}
	if o.Storage != "" {
		opts = append(opts, proxmox.VirtualMachineOption{Name: "storage", Value: o.Storage})
	}
	// Only set flags are sent, so the node's defaults stay in charge.
	for _, f := range []struct {
		name string
		on   bool
	}{{"force", o.Force}, {"unique", o.Unique}, {"start", o.Start}} {
		if f.on {
			opts = append(opts, proxmox.VirtualMachineOption{Name: f.name, Value: boolForm(true)})
		}
	}
	return c.create(ctx, node, o.VMID, opts)
}

// CreateVM starts creating VM vmid on node from config, any keys the API
// takes: "memory": "2048", "scsi0": "local-lvm:0,import-from=local:import/nixos.qcow2",
// "start": "1". An existing ID fails with ErrVMExists before any task
// starts; a failed create task removes the config and disks it made.
func (c *Client) CreateVM(ctx context.Context, node string, vmid int, config map[string]string) (UPID, error) {
	if err := checkNodeVM(node, vmid); err != nil {
		return UPID{}, err
	}
	keys := make([]string, 0, len(config))
	for k := range config {
		if k == "vmid" {
			return UPID{}, errors.New("pve: CreateVM: vmid is an argument, not a config key")
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	opts := make([]proxmox.VirtualMachineOption, 0, len(keys))
	for _, k := range keys {
		opts = append(opts, proxmox.VirtualMachineOption{Name: k, Value: config[k]})
	}
	return c.create(ctx, node, vmid, opts)
}

func (c *Client) create(ctx context.Context, node string, vmid int, opts []proxmox.VirtualMachineOption) (UPID, error) {
	what := "POST /nodes/" + node + "/qemu"
	var t *proxmox.Task
	err := c.call(ctx, what, func(ctx context.Context) (err error) {
		t, err = c.api.NodeRef(node).NewVirtualMachine(ctx, vmid, opts...)
		return err
	})
	if err != nil {
		return UPID{}, err
	}
	return taskOf(what, t)
}

// StartVM starts VM vmid on node and returns the start task. Proxmox
// checks nothing before the task: a missing VM fails the task. An
// HA-managed VM gets an "hastart" task instead.
func (c *Client) StartVM(ctx context.Context, node string, vmid int) (UPID, error) {
	if err := checkNodeVM(node, vmid); err != nil {
		return UPID{}, err
	}
	what := "POST " + vmPath(node, vmid, "/status/start")
	var t *proxmox.Task
	err := c.call(ctx, what, func(ctx context.Context) (err error) {
		t, err = c.api.NodeRef(node).VirtualMachineRef(vmid).Start(ctx)
		return err
	})
	if err != nil {
		return UPID{}, err
	}
	return taskOf(what, t)
}

// StopVM stops VM vmid on node at once, as pulling the plug does, and
// returns the stop task. An HA-managed VM gets an "hastop" task that asks
// the HA manager instead.
func (c *Client) StopVM(ctx context.Context, node string, vmid int) (UPID, error) {
	if err := checkNodeVM(node, vmid); err != nil {
		return UPID{}, err
	}
	what := "POST " + vmPath(node, vmid, "/status/stop")
	var t *proxmox.Task
	err := c.call(ctx, what, func(ctx context.Context) (err error) {
		t, err = c.api.NodeRef(node).VirtualMachineRef(vmid).Stop(ctx)
		return err
	})
	if err != nil {
		return UPID{}, err
	}
	return taskOf(what, t)
}

// Template starts converting the stopped VM vmid on node into a template
// and returns the task. MakeTemplate also waits and checks the result.
func (c *Client) Template(ctx context.Context, node string, vmid int) (UPID, error) {
	if err := checkNodeVM(node, vmid); err != nil {
		return UPID{}, err
	}
	what := "POST " + vmPath(node, vmid, "/template")
	var t *proxmox.Task
	err := c.call(ctx, what, func(ctx context.Context) (err error) {
		t, err = c.api.NodeRef(node).VirtualMachineRef(vmid).ConvertToTemplate(ctx)
		return err
	})
	if err != nil {
		return UPID{}, err
	}
	return taskOf(what, t)
}

// MakeTemplate converts VM vmid into a template, waits for the task and
// then confirms "template: 1" in the config: `qm template` reports
// success even when its task failed, so the config is what counts. A
// config without it yields an error matching ErrNotTemplate.
func (c *Client) MakeTemplate(ctx context.Context, node string, vmid int, poll time.Duration) error {
	upid, err := c.Template(ctx, node, vmid)
	if err != nil {
		return err
	}
	if !upid.IsZero() {
		if _, err := c.WaitTask(ctx, upid, poll); err != nil {
			return err
		}
	}
	conf, err := c.VMConfig(ctx, node, vmid)
	if err != nil {
		return err
	}
	if conf["template"] != "1" {
		return fmt.Errorf("%w: VM %d on %s has no \"template: 1\" after its template task", ErrNotTemplate, vmid, node)
	}
	return nil
}

// DeleteVM starts destroying VM vmid on node with its disks, including
// those the config does not name, and purges it from backup, replication
// and HA jobs. A running VM is refused.
//
// It uses the generic Delete: go-proxmox's VirtualMachine.Delete first
// reads the config and scans storages for a cloud-init ISO of its own.
func (c *Client) DeleteVM(ctx context.Context, node string, vmid int) (UPID, error) {
	if err := checkNodeVM(node, vmid); err != nil {
		return UPID{}, err
	}
	path := vmPath(node, vmid, "")
	params := map[string]int{"purge": 1, "destroy-unreferenced-disks": 1}
	var s string
	err := c.call(ctx, "DELETE "+path, func(ctx context.Context) error { return c.api.DeleteWithParams(ctx, path, params, &s) })
	if err != nil {
		return UPID{}, err
	}
	return upidOf("DELETE "+path, s)
}

// AgentPing asks VM vmid's guest agent for a sign of life. It fails while
// the agent is not configured, the VM is not running, or the agent does
// not answer yet.
func (c *Client) AgentPing(ctx context.Context, node string, vmid int) error {
	if err := checkNodeVM(node, vmid); err != nil {
		return err
	}
	return c.call(ctx, "POST "+vmPath(node, vmid, "/agent/ping"), func(ctx context.Context) error {
		return c.api.NodeRef(node).VirtualMachineRef(vmid).AgentPing(ctx)
	})
}

// Interface is a network interface as the guest agent reports it.
type Interface struct {
	Name      string
	MAC       string
	Addresses []IPAddress
}

// IPAddress is one address of an Interface.
type IPAddress struct {
	Address string
	Type    string // "ipv4" or "ipv6"
	Prefix  int
}

// AgentInterfaces returns the guest's network interfaces from its agent,
// without the loopback interface.
func (c *Client) AgentInterfaces(ctx context.Context, node string, vmid int) ([]Interface, error) {
	if err := checkNodeVM(node, vmid); err != nil {
		return nil, err
	}
	var ifs []*proxmox.AgentNetworkIface
	err := c.call(ctx, "GET "+vmPath(node, vmid, "/agent/network-get-interfaces"), func(ctx context.Context) (err error) {
		ifs, err = c.api.NodeRef(node).VirtualMachineRef(vmid).AgentGetNetworkIFaces(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]Interface, 0, len(ifs))
	for _, i := range ifs {
		it := Interface{Name: i.Name, MAC: i.HardwareAddress}
		for _, a := range i.IPAddresses {
			it.Addresses = append(it.Addresses, IPAddress{Address: a.IPAddress, Type: a.IPAddressType, Prefix: a.Prefix})
		}
		out = append(out, it)
	}
	return out, nil
}

// UpdateConfig sets config keys of VM vmid on node (POST
// /nodes/{node}/qemu/{vmid}/config) and returns the task that applies
// them: a disk given as "STORAGE:SIZE" is allocated by it (qemu-server
// src/PVE/API2/Qemu.pm create_disks), and a network device without a MAC
// address gets one written down. POST rather than PUT, because PUT applies
// the change synchronously without a task to wait for, and a disk's
// allocation can take long.
func (c *Client) UpdateConfig(ctx context.Context, node string, vmid int, config map[string]string) (UPID, error) {
	if err := checkNodeVM(node, vmid); err != nil {
		return UPID{}, err
	}
	if len(config) == 0 {
		return UPID{}, errors.New("pve: UpdateConfig: no settings")
	}
	path := vmPath(node, vmid, "/config")
	var s string
	err := c.call(ctx, "POST "+path, func(ctx context.Context) error { return c.api.Post(ctx, path, config, &s) })
	if err != nil {
		return UPID{}, err
	}
	return upidOf("POST "+path, s)
}
