package pve

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	proxmox "github.com/luthermonson/go-proxmox"
)

// Version is the answer of GET /version or /nodes/{node}/version.
type Version struct {
	Version string `json:"version"` // e.g. "8.4.1"
	Release string `json:"release"` // e.g. "8.4"
	RepoID  string `json:"repoid"`
}

// AtLeast reports whether the version is major.minor or newer.
func (v *Version) AtLeast(major, minor int) bool {
	f := strings.SplitN(v.Version, ".", 3)
	if len(f) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(f[0])
	mi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// Version returns the version of the node that answers the API. It is the
// cheapest call that checks connectivity, TLS trust and the token at once.
//
// It uses the generic Get: go-proxmox's Client.Version caches the answer
// in the shared client, which is a data race under concurrent use.
func (c *Client) Version(ctx context.Context) (*Version, error) {
	var v Version
	err := c.call(ctx, "GET /version", func(ctx context.Context) error { return c.api.Get(ctx, "/version", &v) })
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// NodeVersion returns the version of one node, which may differ from the
// answering node's during an upgrade.
func (c *Client) NodeVersion(ctx context.Context, node string) (*Version, error) {
	if err := checkName("node", node); err != nil {
		return nil, err
	}
	var v Version
	path := "/nodes/" + node + "/version"
	err := c.call(ctx, "GET "+path, func(ctx context.Context) error { return c.api.Get(ctx, path, &v) })
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// Node is one cluster member.
type Node struct {
	Name   string
	Status string // "online", "offline" or "unknown"
	Mem    uint64 // bytes in use
	MaxMem uint64
	MaxCPU int
}

// FreeMem is the memory not in use, in bytes.
func (n Node) FreeMem() uint64 { return n.MaxMem - min(n.Mem, n.MaxMem) }

// Nodes lists the cluster's nodes (GET /nodes).
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	var ns proxmox.NodeStatuses
	err := c.call(ctx, "GET /nodes", func(ctx context.Context) (err error) { ns, err = c.api.Nodes(ctx); return err })
	if err != nil {
		return nil, err
	}
	out := make([]Node, 0, len(ns))
	for _, n := range ns {
		out = append(out, Node{Name: n.Node, Status: n.Status, Mem: n.Mem, MaxMem: n.MaxMem, MaxCPU: n.MaxCPU})
	}
	return out, nil
}

// Guest is a VM or container anywhere in the cluster.
type Guest struct {
	VMID     int
	Type     string // "qemu" or "lxc"
	Node     string
	Name     string
	Status   string // "running", "stopped", or "unknown" just after creation
	Template bool
}

// resources reads GET /cluster/resources?type=typ.
func (c *Client) resources(ctx context.Context, typ string) (proxmox.ClusterResources, error) {
	// Cluster.New makes the handle without the GET /cluster/status that
	// Client.Cluster sends.
	cl := new(proxmox.Cluster).New(c.api)
	var rs proxmox.ClusterResources
	err := c.call(ctx, "GET /cluster/resources?type="+typ, func(ctx context.Context) (err error) {
		rs, err = cl.Resources(ctx, typ)
		return err
	})
	return rs, err
}

// Guests lists the VMs and containers of every node. A VM ID is unique
// across both kinds and the whole cluster, so this is the check to make
// before restoring. A token without VM.Audit on a guest does not see it,
// so the list can miss guests: a restore still refuses them (ErrVMExists).
func (c *Client) Guests(ctx context.Context) ([]Guest, error) {
	rs, err := c.resources(ctx, "vm")
	if err != nil {
		return nil, err
	}
	var out []Guest
	for _, r := range rs {
		if r.Type != "qemu" && r.Type != "lxc" {
			continue
		}
		out = append(out, Guest{VMID: int(r.VMID), Type: r.Type, Node: r.Node, Name: r.Name, Status: r.Status, Template: r.Template == 1})
	}
	return out, nil
}

// ClusterNodes lists the nodes as the cluster view has them, with their
// memory and CPUs, for placement.
func (c *Client) ClusterNodes(ctx context.Context) ([]Node, error) {
	rs, err := c.resources(ctx, "node")
	if err != nil {
		return nil, err
	}
	var out []Node
	for _, r := range rs {
		if r.Type == "node" {
			out = append(out, Node{Name: r.Node, Status: r.Status, Mem: r.Mem, MaxMem: r.MaxMem, MaxCPU: int(r.MaxCPU)})
		}
	}
	return out, nil
}

// ClusterStorages lists every node's storages as the cluster view has
// them: one row per storage and node.
func (c *Client) ClusterStorages(ctx context.Context) ([]Storage, error) {
	rs, err := c.resources(ctx, "storage")
	if err != nil {
		return nil, err
	}
	var out []Storage
	for _, r := range rs {
		if r.Type != "storage" {
			continue
		}
		out = append(out, Storage{
			Name: r.Storage, Node: r.Node, Type: r.PluginType, Content: splitContent(r.Content),
			Total: r.MaxDisk, Used: r.Disk, Avail: r.MaxDisk - min(r.Disk, r.MaxDisk),
			Active: r.Status == "available", Enabled: r.Status != "disabled", Shared: r.Shared == 1,
		})
	}
	return out, nil
}

// HA states for AddHAResource.
const (
	HAStarted = "started"
	HAStopped = "stopped"
)

// AddHAResource puts VM vmid under the HA manager (POST
// /cluster/ha/resources, sid vm:ID) in state ("started", "stopped" or
// empty for the cluster's default) and, if group is not empty, in that HA
// group. Proxmox VE 9 has no groups (they became rules, pve-ha-manager
// 5.0): a caller checks the version before passing one.
func (c *Client) AddHAResource(ctx context.Context, vmid int, state, group string) error {
	if err := checkVMID(vmid); err != nil {
		return err
	}
	opt := &proxmox.HAResourceCreateOption{SID: fmt.Sprintf("vm:%d", vmid), Group: group}
	if state != "" {
		opt.State = &state
	}
	cl := new(proxmox.Cluster).New(c.api)
	return c.call(ctx, "POST /cluster/ha/resources", func(ctx context.Context) error { return cl.NewHAResource(ctx, opt) })
}
