package pve

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// VM status values.
const (
	StatusRunning = "running"
	StatusStopped = "stopped"
)

// VMStatus is the current state of a QEMU guest, from
// GET /nodes/{node}/qemu/{vmid}/status/current.
type VMStatus struct {
	VMID      int    `json:"vmid"`
	Name      string `json:"name"`
	Status    string `json:"status"`    // StatusRunning or StatusStopped
	QMPStatus string `json:"qmpstatus"` // finer: "running", "paused", "prelaunch", ...
	Template  Bool   `json:"template"`
	Lock      string `json:"lock"` // e.g. "create" while a restore runs
}

// VMStatus returns the state of VM vmid on node. A VM the node does not
// have yields an error matching ErrVMNotFound.
func (c *Client) VMStatus(ctx context.Context, node string, vmid int) (*VMStatus, error) {
	var st VMStatus
	path := apiPath("nodes", node, "qemu", strconv.Itoa(vmid), "status", "current")
	if _, err := c.do(ctx, http.MethodGet, path, nil, &st); err != nil {
		return nil, err
	}
	if st.VMID == 0 {
		st.VMID = vmid
	}
	return &st, nil
}

// RestoreOptions are the parameters of a restore from a backup archive.
type RestoreOptions struct {
	VMID    int    // the VM to create (or, with Force, overwrite)
	Archive string // volume ID of the archive, e.g. "local:backup/vzdump-qemu-100-....vma.zst"
	Storage string // where the disks go; empty means the archive's original storages
	Force   bool   // overwrite an existing VM with this ID
	Unique  bool   // give the network cards new random MAC addresses
	Start   bool   // start the VM when the restore succeeded
}

// MinVMID and MaxVMID bound the VM IDs Proxmox accepts.
const (
	MinVMID = 100
	MaxVMID = 999999999
)

// RestoreVM starts restoring a backup archive into a VM on node, via
// POST /nodes/{node}/qemu, and returns the task to wait for. Without
// Force, an existing VM makes the call fail with an error matching
// ErrVMExists before any task starts.
func (c *Client) RestoreVM(ctx context.Context, node string, opts RestoreOptions) (UPID, error) {
	if opts.VMID < MinVMID || opts.VMID > MaxVMID {
		return UPID{}, fmt.Errorf("pve: VM ID %d out of range %d..%d", opts.VMID, MinVMID, MaxVMID)
	}
	if opts.Archive == "" {
		return UPID{}, errors.New("pve: RestoreVM: no archive")
	}
	form := url.Values{
		"vmid":    {strconv.Itoa(opts.VMID)},
		"archive": {opts.Archive},
	}
	if opts.Storage != "" {
		form.Set("storage", opts.Storage)
	}
	// Only set flags are sent, so the node's defaults stay in charge.
	if opts.Force {
		form.Set("force", formBool(true))
	}
	if opts.Unique {
		form.Set("unique", formBool(true))
	}
	if opts.Start {
		form.Set("start", formBool(true))
	}
	return c.task(ctx, http.MethodPost, apiPath("nodes", node, "qemu"), form)
}

// StartVM starts VM vmid on node and returns the start task.
func (c *Client) StartVM(ctx context.Context, node string, vmid int) (UPID, error) {
	return c.task(ctx, http.MethodPost, apiPath("nodes", node, "qemu", strconv.Itoa(vmid), "status", "start"), nil)
}

// Template converts the stopped VM vmid on node into a template. Recent
// Proxmox versions run this as a task and return it; older ones finish
// at once and return the zero UPID.
func (c *Client) Template(ctx context.Context, node string, vmid int) (UPID, error) {
	return c.task(ctx, http.MethodPost, apiPath("nodes", node, "qemu", strconv.Itoa(vmid), "template"), nil)
}

// task calls an endpoint whose data is a UPID, or null when the work was
// done synchronously.
func (c *Client) task(ctx context.Context, method, path string, params url.Values) (UPID, error) {
	var s *string
	if _, err := c.do(ctx, method, path, params, &s); err != nil {
		return UPID{}, err
	}
	if s == nil || *s == "" {
		return UPID{}, nil
	}
	u, err := ParseUPID(*s)
	if err != nil {
		return UPID{}, fmt.Errorf("pve: %s %s: %w", method, path, err)
	}
	return u, nil
}
