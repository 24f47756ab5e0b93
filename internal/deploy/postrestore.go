package deploy

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/vmatool/vmatool/internal/pveconf"
	"github.com/vmatool/vmatool/internal/remote"
)

// StepConfigure applies the settings a restore cannot create (the
// generated config's PostRestore: an EFI vars disk, TPM state, network
// devices that need a fixed MAC address), after the restore and before
// the VM first starts.
const StepConfigure Step = "configure"

// configurer is what a control does for StepConfigure.
type configurer interface {
	// setConfig applies settings to the VM in one call, and confirms
	// the call (and, through the API, its task) succeeded.
	setConfig(ctx context.Context, vmid int, settings []pveconf.Setting) error
}

// configure applies the payload's PostRestore settings once the restore
// ended OK: qmrestore allocates volumes only for the archive's devices
// and a cloud-init drive, and keeps any other drive line as it is
// (qemu-server src/PVE/QemuServer.pm restore_vma_archive), so the disks
// the archive does not hold are created by a config update instead. A
// path that creates the VM with all its settings (ViaImport) has none
// left to apply. A failure here is one after the restore: Run removes
// the VM this run created.
func (j *job) configure(ctx context.Context) error {
	if len(j.pl.postRestore) == 0 || paths[j.via].createsWhole {
		return nil
	}
	detail := fmt.Sprintf("set %s on VM %d (%s)", settingKeys(j.pl.postRestore), j.t.VMID, j.ctl.describe())
	return j.do(StepConfigure, detail, func() error {
		return j.ctl.(configurer).setConfig(ctx, j.t.VMID, j.pl.postRestore)
	})
}

func settingKeys(ss []pveconf.Setting) string {
	keys := make([]string, len(ss))
	for i, s := range ss {
		keys[i] = s.Key
	}
	return strings.Join(keys, ", ")
}

// configureStep is the plan's line for StepConfigure, with the
// settings.
func configureStep(t *Target, p *payload, how string) []string {
	if len(p.postRestore) == 0 {
		return nil
	}
	var parts []string
	for _, s := range p.postRestore {
		parts = append(parts, s.Key+": "+s.Value)
	}
	return []string{fmt.Sprintf("set what the restore cannot create on VM %d (%s): %s", t.VMID, how, strings.Join(parts, "; "))}
}

// mergePostRestore adds settings to the parameters of a create call,
// which creates the disks and MAC addresses itself.
func mergePostRestore(params map[string]string, ss []pveconf.Setting) {
	for _, s := range ss {
		params[s.Key] = s.Value
	}
}

// setConfig runs qm set, which applies the update synchronously and exits
// non-zero when it fails. Values may hold ';' (trunks): Run quotes each
// argument for the remote shell.
func (s controlSSH) setConfig(ctx context.Context, vmid int, settings []pveconf.Setting) error {
	g := pveconf.Generated{PostRestore: settings}
	args := g.QMSetArgs(vmid)
	if err := s.c.Run(ctx, args, nil, io.Discard, io.Discard); err != nil {
		return fmt.Errorf("%s: %w", remote.ShellQuote(args...), err)
	}
	return nil
}

// setConfig posts the settings (POST, which runs them as a task that may
// allocate disks) and waits for the task.
func (a controlAPI) setConfig(ctx context.Context, vmid int, settings []pveconf.Setting) error {
	params := make(map[string]string, len(settings))
	mergePostRestore(params, settings)
	upid, err := a.c.UpdateConfig(ctx, a.node, vmid, params)
	if err != nil {
		return err
	}
	return a.wait(ctx, upid)
}
