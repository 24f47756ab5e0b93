package deploy

import (
	"context"
	"errors"

	"github.com/vmatool/vmatool/internal/pve"
)

// control is how a path works the node's VMs once the data is there:
// over SSH with qm and pvesh (controlSSH) or through the API
// (controlAPI). Each call says what it confirmed; none trusts an exit
// status Proxmox is known to get wrong.
type control interface {
	// guests lists the cluster's VMs and containers.
	guests(ctx context.Context) ([]guest, error)
	// template converts the VM and confirms "template: 1" in its config.
	template(ctx context.Context, vmid int) error
	// start starts the VM and confirms the start task succeeded.
	start(ctx context.Context, vmid int) error
	// destroy removes the VM with its disks; errNothingToRemove if it has
	// no config.
	destroy(ctx context.Context, vmid int) error
	// describe names how it reaches the node, for plans and messages.
	describe() string

	// stop stops the VM at once (wait.go).
	stop(ctx context.Context, vmid int) error
	// agentPing asks the guest agent for a sign of life, and
	// agentInterfaces for the guest's network interfaces (wait.go).
	agentPing(ctx context.Context, vmid int) error
	agentInterfaces(ctx context.Context, vmid int) ([]pve.Interface, error)
	// addHA puts the VM under the HA manager, and version is the node's
	// Proxmox VE version, which says whether HA groups exist (ha.go).
	addHA(ctx context.Context, vmid int, state, group string) error
	version(ctx context.Context) (*pve.Version, error)
}

// guest is a VM or container in the cluster view.
type guest struct {
	vmid int
	typ  string // "qemu" or "lxc"
	node string
}

// errNothingToRemove means a VM to destroy has no config: a refused or
// failed create left nothing behind.
var errNothingToRemove = errors.New("no VM to remove")

// ErrNotConfirmed means Proxmox reported success but the result is not
// there: a template conversion that left no "template: 1".
var ErrNotConfirmed = errors.New("deploy: not confirmed")

// ErrIDTaken means the ID check found a guest holding the VM ID: any
// container, or a VM unless Force replaces it.
var ErrIDTaken = errors.New("deploy: VM ID taken")
