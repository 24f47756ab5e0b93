package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/vmatool/vmatool/internal/pve"
)

// StepHA puts the VM under the HA manager (Target.HA).
const StepHA Step = "ha"

// ErrHAGroupsGone means a target names an HA group for a node whose
// Proxmox VE (9 or later) has none: HA groups became HA rules
// (pve-ha-manager 5.0), and POST /cluster/ha/resources no longer takes
// a group.
var ErrHAGroupsGone = errors.New("deploy: Proxmox VE 9 has no HA groups")

// checkHA refuses, before anything is sent, an HA group on a node that
// has no HA groups.
func (j *job) checkHA(ctx context.Context) error {
	if !j.t.HA || j.t.HAGroup == "" {
		return nil
	}
	v, err := j.ctl.version(ctx)
	if err != nil {
		return fmt.Errorf("reading the node's Proxmox VE version, for ha-group: %w", err)
	}
	if v.AtLeast(9, 0) {
		return fmt.Errorf("%w: node %s runs Proxmox VE %s, where HA groups became HA rules; leave out ha-group %s and give the VM a node affinity rule instead (ha-manager rules add node-affinity ...)",
			ErrHAGroupsGone, j.node, v.Version, j.t.HAGroup)
	}
	return nil
}

// haState is the state the VM is put under HA in: started if it was
// started (so the HA manager keeps it running), else stopped, so that
// adding it does not start it.
func haState(t *Target) string {
	if t.starts() {
		return pve.HAStarted
	}
	return pve.HAStopped
}

// haStep says what addHA does, for plans and events.
func haStep(t *Target, api bool) string {
	how := fmt.Sprintf("ha-manager add vm:%d over SSH", t.VMID)
	if api {
		how = fmt.Sprintf("POST /cluster/ha/resources sid=vm:%d", t.VMID)
	}
	s := fmt.Sprintf("put VM %d under the HA manager (%s) with state %s", t.VMID, how, haState(t))
	if t.HAGroup != "" {
		s += fmt.Sprintf(" in group %s (checked first: Proxmox VE 9 has no HA groups)", t.HAGroup)
	}
	return s
}

// addHA registers the VM with the HA manager.
func (j *job) addHA(ctx context.Context) error {
	if !j.t.HA {
		return nil
	}
	_, api := j.ctl.(controlAPI)
	return j.do(StepHA, haStep(j.t, api), func() error {
		return j.ctl.addHA(ctx, j.t.VMID, haState(j.t), j.t.HAGroup)
	})
}

func (a controlAPI) addHA(ctx context.Context, vmid int, state, group string) error {
	return a.c.AddHAResource(ctx, vmid, state, group)
}

func (a controlAPI) version(ctx context.Context) (*pve.Version, error) {
	return a.c.NodeVersion(ctx, a.node)
}

// addHA runs ha-manager add vm:ID (pve-ha-manager src/PVE/CLI/ha_manager.pm).
func (s controlSSH) addHA(ctx context.Context, vmid int, state, group string) error {
	args := []string{"ha-manager", "add", "vm:" + strconv.Itoa(vmid), "--state", state}
	if group != "" {
		args = append(args, "--group", group)
	}
	if err := s.c.Run(ctx, args, nil, io.Discard, io.Discard); err != nil {
		return fmt.Errorf("ha-manager add: %w", err)
	}
	return nil
}

// version asks pvesh for the node's /version, as the API answers it.
func (s controlSSH) version(ctx context.Context) (*pve.Version, error) {
	var out bytes.Buffer
	if err := s.c.Run(ctx, []string{"pvesh", "get", "/version", "--output-format", "json"}, nil, &out, io.Discard); err != nil {
		return nil, fmt.Errorf("pvesh get /version: %w", err)
	}
	var v pve.Version
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		return nil, fmt.Errorf("pvesh get /version printed something that is not JSON: %v", err)
	}
	return &v, nil
}
