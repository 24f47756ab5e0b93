package deploy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vmatool/vmatool/internal/pve"
)

// controlAPI works the node's VMs through the Proxmox VE API.
type controlAPI struct {
	c    *pve.Client
	node string
	poll time.Duration
	warn func(string)
}

func (a controlAPI) describe() string { return "the API" }

// guests lists the cluster view. A token without VM.Audit on a guest
// does not see it (pve-manager PVE/API2/Cluster.pm), so the list proves
// an ID free only for guests the token may see: the create or restore
// call's own refusal is recognised as well.
func (a controlAPI) guests(ctx context.Context) ([]guest, error) {
	gs, err := a.c.Guests(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]guest, 0, len(gs))
	for _, g := range gs {
		out = append(out, guest{vmid: g.VMID, typ: g.Type, node: g.Node})
	}
	return out, nil
}

func (a controlAPI) wait(ctx context.Context, upid pve.UPID) error {
	if upid.IsZero() {
		return nil
	}
	_, err := a.c.WaitTask(ctx, upid, a.poll)
	return err
}

// template waits for the task, then confirms "template: 1" in the
// config, which is what counts (qemu-server src/PVE/API2/Qemu.pm
// template forks the conversion). A token that may not read the config
// gets a warning instead of the confirmation.
func (a controlAPI) template(ctx context.Context, vmid int) error {
	upid, err := a.c.Template(ctx, a.node, vmid)
	if err != nil {
		return err
	}
	if err := a.wait(ctx, upid); err != nil {
		return err
	}
	conf, err := a.c.VMConfig(ctx, a.node, vmid)
	if errors.Is(err, pve.ErrForbidden) {
		a.warn(fmt.Sprintf("the template task of VM %d ended OK, but the token may not read the config to confirm \"template: 1\" (it lacks VM.Audit)", vmid))
		return nil
	}
	if err != nil {
		return fmt.Errorf("confirming the template: %w", err)
	}
	if conf["template"] != "1" {
		return fmt.Errorf("%w: the template task of VM %d ended OK but the config has no \"template: 1\"", ErrNotConfirmed, vmid)
	}
	return nil
}

// start starts the VM as a task of its own and waits for it: a start
// asked of the restore or create call (start=1) that fails is only a
// warning in a task that ends OK (qemu-server src/PVE/API2/Qemu.pm).
func (a controlAPI) start(ctx context.Context, vmid int) error {
	upid, err := a.c.StartVM(ctx, a.node, vmid)
	if err != nil {
		return err
	}
	return a.wait(ctx, upid)
}

func (a controlAPI) destroy(ctx context.Context, vmid int) error {
	upid, err := a.c.DeleteVM(ctx, a.node, vmid)
	if errors.Is(err, pve.ErrVMNotFound) {
		return errNothingToRemove
	}
	if err != nil {
		return err
	}
	return a.wait(ctx, upid)
}
