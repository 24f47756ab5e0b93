package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vmatool/vmatool/internal/pve"
	"github.com/vmatool/vmatool/internal/remote"
)

// deployEnv is what every target shares: streams, the source, the display
// and how to find the user's SSH setup.
type deployEnv struct {
	s       *streams
	src     *deploySource
	display *display
	now     time.Time
}

// deployment is one target under way.
type deployment struct {
	env    *deployEnv
	t      deployTarget
	o      *deployOptions
	ssh    *remote.Client
	api    *pve.Client
	node   string
	out    *outgoing
	remote string // archive path on the node
	steps  []string
	// existed says a guest held the VM ID before; touched says the
	// restore got past Proxmox's up-front checks, after which the VM
	// exists even if the restore fails.
	existed bool
	touched bool
}

// plan describes what deploy will do for a target, for --dry-run.
func (d *deployment) plan() string {
	o := d.o
	h, _ := parseHost(o.host)
	var b strings.Builder
	what := "pack " + d.env.src.Path
	if d.env.src.Archive() {
		what = "send archive " + d.env.src.Path
	}
	fmt.Fprintf(&b, "%s: %s", d.t.name, what)
	dest := h.user + "@" + h.host
	if h.port != 22 {
		dest += fmt.Sprintf(" (port %d)", h.port)
	}
	if o.stream {
		fmt.Fprintf(&b, " | ssh %s qmrestore - %d --storage %s", dest, o.vmid, o.storage)
	} else {
		fmt.Fprintf(&b, " -> %s:%s", dest, path.Join(o.dumpDir, d.out.name))
		if o.restore == "api" {
			fmt.Fprintf(&b, "; restore through %s (archive %s:backup/%s)", d.apiURL(), o.dumpStorage, d.out.name)
		} else {
			fmt.Fprintf(&b, "; qmrestore %s %d --storage %s", path.Join(o.dumpDir, d.out.name), o.vmid, o.storage)
		}
	}
	if o.force {
		b.WriteString(" --force 1")
	}
	if o.unique {
		b.WriteString(" --unique 1")
	}
	if o.template {
		b.WriteString("; make it a template")
	}
	if o.start {
		b.WriteString("; start it")
	}
	if !o.stream && !o.keepArchive {
		b.WriteString("; delete the archive")
	}
	return b.String()
}

func (d *deployment) apiURL() string {
	if d.o.apiURL != "" {
		return d.o.apiURL
	}
	h, _ := parseHost(d.o.host)
	return "https://" + h.host + ":8006"
}

// run deploys one target. Every failure before the restore leaves the node
// as it was; a failure after it removes the VM this deploy created.
func (d *deployment) run(ctx context.Context, m *meter) error {
	o := d.o
	if err := d.connect(ctx); err != nil {
		return err
	}
	defer d.ssh.Close()
	if err := d.checkVMID(ctx); err != nil {
		return err
	}
	if err := d.restoreAndFinish(ctx, m); err != nil {
		return d.undo(ctx, err)
	}
	if !o.stream && !o.keepArchive {
		if err := d.deleteArchive(ctx); err != nil {
			return fmt.Errorf("VM %d restored, but deleting the archive failed: %w", o.vmid, err)
		}
	}
	return nil
}

// restoreAndFinish restores the VM and makes it a template or starts it.
func (d *deployment) restoreAndFinish(ctx context.Context, m *meter) error {
	o := d.o
	if o.stream {
		if err := d.streamRestore(ctx, m); err != nil {
			return err
		}
	} else {
		if err := d.upload(ctx, m); err != nil {
			return err
		}
		if err := d.restore(ctx); err != nil {
			return fmt.Errorf("%w (the archive stays at %s for inspection)", err, d.remote)
		}
	}
	if o.template {
		if err := d.vmCommand(ctx, "template"); err != nil {
			return err
		}
	}
	if o.start {
		if err := d.vmCommand(ctx, "start"); err != nil {
			return err
		}
	}
	return nil
}

// undo handles a failure once the restore may have begun. Proxmox leaves a
// failed restore's config behind (and the VM after a failed template or
// start), so a VM this deploy created is destroyed, and said so on stderr;
// a VM replaced with --force is gone either way, which the error says.
func (d *deployment) undo(ctx context.Context, err error) error {
	vmid := d.o.vmid
	if d.touched && !d.existed {
		// Clean up even after an interrupt, but not for ever.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		switch derr := d.destroyVM(ctx); {
		case derr == nil:
			fmt.Fprintf(d.env.s.err, "vmatool deploy: %s: removed VM %d, which this deploy had created\n", d.t.name, vmid)
		case errors.Is(derr, errNothingToRemove):
		default:
			fmt.Fprintf(d.env.s.err, "vmatool deploy: %s: VM %d was left behind: removing it failed: %v\n", d.t.name, vmid, derr)
		}
	}
	if d.existed && d.touched {
		return fmt.Errorf("%w; VM %d existed and was replaced with --force: its previous disks and config are lost", err, vmid)
	}
	return err
}

// errNothingToRemove means the failed restore never wrote a config.
var errNothingToRemove = errors.New("no VM to remove")

// destroyVM removes the VM with its disks, through the API or `qm destroy`.
func (d *deployment) destroyVM(ctx context.Context) error {
	if d.api == nil {
		var stderr bytes.Buffer
		err := d.ssh.Run(ctx, []string{"qm", "destroy", strconv.Itoa(d.o.vmid), "--purge", "1", "--destroy-unreferenced-disks", "1"},
			nil, io.Discard, &stderr)
		if err != nil && strings.Contains(stderr.String(), "does not exist") {
			return errNothingToRemove
		}
		return err
	}
	upid, err := d.api.DeleteVM(ctx, d.node, d.o.vmid)
	if errors.Is(err, pve.ErrVMNotFound) {
		return errNothingToRemove
	}
	if err != nil {
		return err
	}
	return d.wait(ctx, upid)
}

// markTouched records, after a restore was attempted, whether it got past
// the checks qmrestore makes before it locks the VM's config: its
// "already exists" and "is locked" refusals leave the VM as it was.
func (d *deployment) markTouched(err error) {
	var ee *remote.ExitError
	refused := errors.As(err, &ee) && (strings.Contains(ee.Stderr, "already exists") || strings.Contains(ee.Stderr, "is locked"))
	d.touched = !refused
}

func (d *deployment) step(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	d.steps = append(d.steps, msg)
	d.env.display.println("%s: %s", d.t.name, msg)
}

// connect opens SSH (always: the archive goes up over SSH) and, for
// --restore api, the API client.
func (d *deployment) connect(ctx context.Context) error {
	o, s := d.o, d.env.s
	h, _ := parseHost(o.host)
	home := homeDir(s.getenv)
	cfg := remote.Config{User: h.user, Host: h.host, Port: h.port, KnownHostsFile: o.knownHosts, InsecureIgnoreHostKey: o.insecure}
	if cfg.KnownHostsFile == "" {
		cfg.KnownHostsFile = filepath.Join(home, ".ssh", "known_hosts")
	}
	cfg.IdentityFiles = o.identity
	if sock := s.getenv("SSH_AUTH_SOCK"); sock != "" {
		cfg.UseAgent, cfg.AgentSocket = true, sock
	}
	if len(cfg.IdentityFiles) == 0 && !cfg.UseAgent {
		for _, k := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			if p := filepath.Join(home, ".ssh", k); fileExists(p) {
				cfg.IdentityFiles = append(cfg.IdentityFiles, p)
			}
		}
	}
	if o.insecure {
		fmt.Fprintf(s.err, "vmatool deploy: warning: %s: not checking the SSH host key of %s (--insecure-ignore-host-key)\n", d.t.name, h)
	}
	c, err := remote.Dial(ctx, cfg)
	if err != nil {
		return err
	}
	d.ssh = c
	d.node = o.node
	if d.node == "" {
		if d.node, err = c.Hostname(ctx); err != nil {
			c.Close()
			return fmt.Errorf("finding the node name: %w", err)
		}
	}
	if o.restore == "api" {
		token, err := pve.LoadToken(o.tokenFile, s.getenv("PVE_TOKEN"))
		if errors.Is(err, pve.ErrNoToken) {
			err = fmt.Errorf("--restore api needs a token: --token-file FILE or PVE_TOKEN (USER@REALM!ID=SECRET)")
		}
		if err != nil {
			c.Close()
			return err
		}
		var opts []pve.Option
		if o.tlsFingerprint != "" {
			opts = append(opts, pve.WithTLSFingerprint(o.tlsFingerprint))
		}
		if d.api, err = pve.New(d.apiURL(), token, opts...); err != nil {
			c.Close()
			return err
		}
	}
	return nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// checkVMID refuses an existing VM (ids are cluster-wide) before anything
// is uploaded, unless --force.
func (d *deployment) checkVMID(ctx context.Context) error {
	var where, kind string
	if d.api != nil {
		guests, err := d.api.Guests(ctx)
		if err != nil {
			return err
		}
		for _, g := range guests {
			if g.VMID == d.o.vmid {
				where, kind = g.Node, g.Type
			}
		}
	} else {
		var out bytes.Buffer
		err := d.ssh.Run(ctx, []string{"pvesh", "get", "/cluster/resources", "--type", "vm", "--output-format", "json"}, nil, &out, io.Discard)
		if err != nil {
			return fmt.Errorf("listing the cluster's VMs: %w", err)
		}
		var vms []struct {
			VMID json.Number `json:"vmid"`
			Node string      `json:"node"`
			Type string      `json:"type"`
		}
		if err := json.Unmarshal(out.Bytes(), &vms); err != nil {
			return fmt.Errorf("listing the cluster's VMs: pvesh printed something that is not JSON: %v", err)
		}
		for _, vm := range vms {
			if vm.VMID.String() == strconv.Itoa(d.o.vmid) {
				where, kind = vm.Node, vm.Type
			}
		}
	}
	d.existed = where != ""
	switch {
	case kind == "lxc":
		// Restoring a VM over a container's ID is never what was meant.
		return fmt.Errorf("ID %d is taken by container CT %d on node %s", d.o.vmid, d.o.vmid, where)
	case d.existed && !d.o.force:
		return fmt.Errorf("VM %d already exists on node %s (use --force to replace it)", d.o.vmid, where)
	}
	return nil
}

// produce runs the archive writer into a pipe for a consumer.
func (d *deployment) produce(ctx context.Context, m *meter) (*io.PipeReader, func() error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := d.out.write(ctx, pw, m)
		pw.CloseWithError(err)
		done <- err
	}()
	return pr, func() error { pr.Close(); return <-done }
}

func (d *deployment) upload(ctx context.Context, m *meter) error {
	d.remote = path.Join(d.o.dumpDir, d.out.name)
	d.step("uploading %s", d.remote)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, wait := d.produce(ctx, m)
	err := d.ssh.Upload(ctx, pr, d.o.dumpDir, d.out.name, func(n int64) { m.sent.Store(n) })
	if err != nil {
		cancel()
	}
	if perr := wait(); err == nil && perr != nil {
		err = perr
	}
	if err != nil {
		return fmt.Errorf("uploading %s: %w", d.remote, err)
	}
	return nil
}

// sentCounter counts bytes as they go to the node.
type sentCounter struct {
	r io.Reader
	m *meter
}

func (c sentCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.m.sent.Add(int64(n))
	return n, err
}

func (d *deployment) qmrestoreArgs(archive string) []string {
	args := []string{"qmrestore", archive, strconv.Itoa(d.o.vmid), "--storage", d.o.storage}
	if d.o.force {
		args = append(args, "--force", "1")
	}
	if d.o.unique {
		args = append(args, "--unique", "1")
	}
	return args
}

func (d *deployment) streamRestore(ctx context.Context, m *meter) error {
	d.step("streaming into qmrestore - %d", d.o.vmid)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, wait := d.produce(ctx, m)
	err := d.ssh.Run(ctx, d.qmrestoreArgs("-"), sentCounter{pr, m}, io.Discard, io.Discard)
	if err != nil {
		cancel()
	}
	d.markTouched(err)
	if perr := wait(); err == nil && perr != nil {
		err = perr
	}
	if err != nil {
		return fmt.Errorf("qmrestore: %w", err)
	}
	return nil
}

func (d *deployment) restore(ctx context.Context) error {
	d.step("restoring VM %d", d.o.vmid)
	if d.api == nil {
		err := d.ssh.Run(ctx, d.qmrestoreArgs(d.remote), nil, io.Discard, io.Discard)
		d.markTouched(err)
		if err != nil {
			return fmt.Errorf("qmrestore: %w", err)
		}
		return nil
	}
	upid, err := d.api.RestoreVM(ctx, d.node, pve.RestoreOptions{
		VMID: d.o.vmid, Archive: d.o.dumpStorage + ":backup/" + d.out.name, Storage: d.o.storage,
		Force: d.o.force, Unique: d.o.unique,
	})
	if err != nil {
		// Refused up front: the task never ran, nothing was created.
		return err
	}
	d.markTouched(nil)
	return d.wait(ctx, upid)
}

func (d *deployment) wait(ctx context.Context, upid pve.UPID) error {
	if upid.IsZero() {
		return nil
	}
	_, err := d.api.WaitTask(ctx, upid, time.Second)
	return err
}

// vmCommand runs "qm start|template" or its API call.
func (d *deployment) vmCommand(ctx context.Context, what string) error {
	d.step("%s VM %d", what, d.o.vmid)
	if d.api == nil {
		if err := d.ssh.Run(ctx, []string{"qm", what, strconv.Itoa(d.o.vmid)}, nil, io.Discard, io.Discard); err != nil {
			return fmt.Errorf("qm %s: %w", what, err)
		}
		return nil
	}
	if what == "template" {
		// Confirms "template: 1" in the config: the task can fail
		// while `qm template` reports success.
		return d.api.MakeTemplate(ctx, d.node, d.o.vmid, time.Second)
	}
	upid, err := d.api.StartVM(ctx, d.node, d.o.vmid)
	if err != nil {
		return err
	}
	return d.wait(ctx, upid)
}

func (d *deployment) deleteArchive(ctx context.Context) error {
	d.step("deleting %s", d.remote)
	if d.api == nil {
		return d.ssh.Remove(ctx, d.remote)
	}
	upid, err := d.api.DeleteVolume(ctx, d.node, d.o.dumpStorage, d.o.dumpStorage+":backup/"+d.out.name)
	if err != nil {
		return err
	}
	return d.wait(ctx, upid)
}

// errorDetail is the one-line reason shown in the results table.
func errorDetail(err error) string {
	var ee *remote.ExitError
	if errors.As(err, &ee) && ee.Stderr != "" {
		lines := strings.Split(strings.TrimSpace(ee.Stderr), "\n")
		return oneLine(err.Error() + ": " + lines[len(lines)-1])
	}
	return oneLine(err.Error())
}
