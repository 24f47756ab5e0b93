package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/vmatool/vmatool/internal/remote"
)

// controlSSH works the node's VMs with qm and pvesh over SSH, as root.
type controlSSH struct {
	c *remote.Client
}

func (s controlSSH) describe() string { return "qm over SSH" }

// guests asks pvesh for the cluster view, which lists VMs and containers
// alike (pve-manager PVE/API2/Cluster.pm); over SSH as root it misses
// none.
func (s controlSSH) guests(ctx context.Context) ([]guest, error) {
	var out bytes.Buffer
	err := s.c.Run(ctx, []string{"pvesh", "get", "/cluster/resources", "--type", "vm", "--output-format", "json"}, nil, &out, io.Discard)
	if err != nil {
		return nil, fmt.Errorf("listing the cluster's guests: %w", err)
	}
	var rows []struct {
		VMID json.Number `json:"vmid"`
		Node string      `json:"node"`
		Type string      `json:"type"`
	}
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil {
		return nil, fmt.Errorf("listing the cluster's guests: pvesh printed something that is not JSON: %v", err)
	}
	gs := make([]guest, 0, len(rows))
	for _, r := range rows {
		id, err := strconv.Atoi(r.VMID.String())
		if err != nil {
			return nil, fmt.Errorf("listing the cluster's guests: pvesh printed vmid %q", r.VMID)
		}
		gs = append(gs, guest{vmid: id, typ: r.Type, node: r.Node})
	}
	return gs, nil
}

// template runs qm template, then reads the config: qm template exits 0
// even when its task fails (qemu-server src/PVE/CLI/qm.pm maps it to the
// API call without the $upid_exit handler that gives qm start the task's
// exit status).
func (s controlSSH) template(ctx context.Context, vmid int) error {
	id := strconv.Itoa(vmid)
	if err := s.c.Run(ctx, []string{"qm", "template", id}, nil, io.Discard, io.Discard); err != nil {
		return fmt.Errorf("qm template: %w", err)
	}
	conf, err := s.config(ctx, vmid)
	if err != nil {
		return fmt.Errorf("confirming the template: %w", err)
	}
	if conf["template"] != "1" {
		return fmt.Errorf("qm template %d exited 0 but the config has no \"template: 1\": the conversion failed (see the node's task log): %w", vmid, ErrNotConfirmed)
	}
	return nil
}

// config reads the VM's config with qm config.
func (s controlSSH) config(ctx context.Context, vmid int) (map[string]string, error) {
	var out bytes.Buffer
	if err := s.c.Run(ctx, []string{"qm", "config", strconv.Itoa(vmid)}, nil, &out, io.Discard); err != nil {
		return nil, fmt.Errorf("qm config: %w", err)
	}
	conf := map[string]string{}
	for _, line := range strings.Split(out.String(), "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok {
			conf[k] = strings.TrimSpace(v)
		}
	}
	return conf, nil
}

// start runs qm start, which exits non-zero when its task fails
// (qemu-server src/PVE/CLI/qm.pm: $upid_exit).
func (s controlSSH) start(ctx context.Context, vmid int) error {
	if err := s.c.Run(ctx, []string{"qm", "start", strconv.Itoa(vmid)}, nil, io.Discard, io.Discard); err != nil {
		return fmt.Errorf("qm start: %w", err)
	}
	return nil
}

func (s controlSSH) destroy(ctx context.Context, vmid int) error {
	err := s.c.Run(ctx, []string{"qm", "destroy", strconv.Itoa(vmid), "--purge", "1", "--destroy-unreferenced-disks", "1"},
		nil, io.Discard, io.Discard)
	var ee *remote.ExitError
	if errors.As(err, &ee) && strings.Contains(ee.Stderr, "does not exist") {
		return errNothingToRemove
	}
	if err != nil {
		return fmt.Errorf("qm destroy: %w", err)
	}
	return nil
}
