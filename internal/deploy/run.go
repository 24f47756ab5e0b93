package deploy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmatool/vmatool/internal/pve"
	"github.com/vmatool/vmatool/internal/remote"
)

// Result is how one target ended.
type Result struct {
	Target  string  `json:"target"`
	Host    string  `json:"host"`
	Node    string  `json:"node,omitempty"`
	VMID    int     `json:"vmid"`
	Via     Via     `json:"via"`
	OK      bool    `json:"ok"`
	Detail  string  `json:"detail"`
	Seconds float64 `json:"seconds"`
	// Archive is where the archive stays on the node (KeepArchive, or a
	// failed restore, which leaves it for inspection).
	Archive string `json:"archive,omitempty"`
	// Sent is the bytes that went to the node, compressed.
	Sent int64 `json:"sent"`
	// Spilled is the part of Sent read back from the spill file of an
	// archive shared with other targets, which this one fell behind:
	// bytes read twice on this machine, once from the image and once
	// from local disk.
	Spilled int64 `json:"spilled,omitempty"`
	// Addresses are the VM's IP addresses as its guest agent reported
	// them (Wait), without loopback and link-local ones.
	Addresses []string `json:"addresses,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
	// Err is the failure, for errors.Is; Detail has its text.
	Err error `json:"-"`
}

// cleanupTimeout bounds the cleanup and undo steps, which also run after
// the context was cancelled.
const cleanupTimeout = 2 * time.Minute

// Run deploys every target of plan from src, Parallel at a time, and
// returns a result per target in plan order. One target's failure does
// not stop the others. events, which may be nil, receives what happens;
// Run calls it from one goroutine at a time.
//
// Targets that share an archive (TargetPlan.Shares) are started
// together, and a failure of one drops it from the shared stream without
// stopping the others.
//
// Every failure before a restore leaves the node as it was (an upload
// leaves no partial file). After a failure from the restore on, a VM this
// run created is removed (Proxmox leaves a failed restore's config
// behind), and a Warning says so; a VM replaced with Force is reported as
// lost in the error. When the wait for the guest agent or HA fails, the
// VM is removed only under DestroyOnFailure.
//
// Targets whose node is NodeAuto are placed first if the caller did not
// call Plan.Place.
func Run(ctx context.Context, plan *Plan, src *Source, events func(Event)) []Result {
	var mu sync.Mutex
	emit := func(e Event) {
		if events == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		events(e)
	}
	plan.Place(ctx) // a target it cannot place fails alone, below
	results := make([]Result, len(plan.Targets))
	sched, shares := newScheduler(plan), newShares(ctx, plan, src)
	var wg sync.WaitGroup
	for i := range plan.Targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer sched.enter(i)()
			j := &job{tp: &plan.Targets[i], t: &plan.Targets[i].Target, opts: &plan.opts, src: src, emit: emit, via: plan.Targets[i].Via,
				share: shares[i]}
			results[i] = j.result(j.run(ctx))
		}()
	}
	wg.Wait()
	return results
}

// job is one target under way.
type job struct {
	tp   *TargetPlan
	t    *Target
	opts *Options
	src  *Source
	emit func(Event)
	via  Via
	path restorePath
	pl   *payload
	ssh  *remote.Client
	api  *pve.Client
	node string
	ctl  control

	// share is the target's place among those sharing an archive, or nil.
	share *shareMember

	start time.Time
	// existed says a guest held the ID before the run (Force). touched
	// says Proxmox got past the checks it makes before it writes the
	// VM's config: from then on the VM exists even if the restore fails.
	existed, touched bool
	// restored says the restore (or import) step finished.
	restored bool
	// unlisted says the ID check saw no guest with the ID.
	unlisted bool
	// failed is the error that ended the steps, for cleanup.
	failed  error
	archive string // where a kept archive is
	// addresses are what the guest agent reported (wait.go).
	addresses []string

	sent, read atomic.Int64
	spilled    atomic.Int64 // of sent, read back from a share's spill file
	lastEmit   atomic.Int64

	mu       sync.Mutex
	warnings []string
}

func (j *job) run(ctx context.Context) error {
	defer j.share.leave()
	j.start = time.Now()
	if j.tp.placeErr != nil {
		return j.tp.placeErr
	}
	if err := j.do(StepConnect, j.connectDetail(), func() error { return j.connect(ctx) }); err != nil {
		return err
	}
	defer j.close()
	j.share.keep(j.via)
	pl, err := openPayload(j.src, j.t, j.opts.Now, nil)
	if err != nil {
		return err
	}
	defer pl.close()
	j.pl = pl
	j.path = paths[j.via].open(j)
	err = j.do(StepCheck, fmt.Sprintf("VM ID %d and what --via %s needs on node %s", j.t.VMID, j.via, j.node), func() error {
		if err := j.checkVMID(ctx); err != nil {
			return err
		}
		if err := j.checkHA(ctx); err != nil {
			return err
		}
		return j.path.prepare(ctx)
	})
	if err != nil {
		return err
	}
	err = j.path.transfer(ctx)
	if err == nil {
		err = j.path.restore(ctx)
		j.restored = err == nil
	}
	if err == nil {
		err = j.configure(ctx) // postrestore.go: what the restore cannot create
	}
	if err == nil {
		err = j.path.finish(ctx)
	}
	if err != nil {
		err = j.undo(ctx, err)
	} else {
		err = j.afterFinish(ctx) // wait.go: the guest agent, then HA
	}
	j.failed = err
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if cerr := j.path.cleanup(cctx); cerr != nil {
		if err == nil {
			return fmt.Errorf("VM %d is deployed, but cleaning up failed: %w", j.t.VMID, cerr)
		}
		j.warn(fmt.Sprintf("cleaning up failed: %v", cerr))
	}
	return err
}

func (j *job) result(err error) Result {
	r := Result{Target: j.t.Name, Host: j.t.Host, Node: j.node, VMID: j.t.VMID, Via: j.via, OK: err == nil,
		Seconds: time.Since(j.start).Seconds(), Archive: j.archive, Sent: j.sent.Load(), Spilled: j.spilled.Load(), Err: err}
	if r.Host == "" {
		r.Host = j.t.apiURL()
	}
	j.mu.Lock()
	r.Warnings = append(r.Warnings, j.warnings...)
	j.mu.Unlock()
	r.Addresses = j.addresses
	if err != nil {
		r.Detail = errorDetail(err)
		return r
	}
	r.Detail = "restored"
	if j.via == ViaImport {
		r.Detail = "imported"
	}
	if j.t.Template {
		r.Detail += ", template"
	}
	if j.t.starts() {
		r.Detail += ", started"
	}
	r.Detail += j.afterDetail()
	return r
}

// errorDetail is the error on one line, with the last line a remote
// command printed on standard error.
func errorDetail(err error) string {
	msg := err.Error()
	var ee *remote.ExitError
	if errors.As(err, &ee) && ee.Stderr != "" {
		lines := strings.Split(strings.TrimSpace(ee.Stderr), "\n")
		if last := strings.TrimSpace(lines[len(lines)-1]); !strings.Contains(msg, last) {
			msg += ": " + last
		}
	}
	return strings.Join(strings.Fields(msg), " ")
}

// do runs one step between its StepStarted and StepFinished events.
func (j *job) do(s Step, detail string, fn func() error) error {
	j.emit(StepStarted{Target: j.t.Name, Step: s, Detail: detail})
	start := time.Now()
	err := fn()
	j.emit(StepFinished{Target: j.t.Name, Step: s, Err: err, Elapsed: time.Since(start)})
	return err
}

func (j *job) warn(msg string) {
	j.mu.Lock()
	j.warnings = append(j.warnings, msg)
	j.mu.Unlock()
	j.emit(Warning{Target: j.t.Name, Message: msg})
}

// progressEvery spaces BytesSent events.
const progressEvery = 100 * time.Millisecond

// addSent counts bytes that went to the node.
func (j *job) addSent(n int64) {
	j.sent.Add(n)
	j.progress(false)
}

// setSent sets the bytes that went to the node, for transports that
// report a running total.
func (j *job) setSent(n int64) {
	j.sent.Store(n)
	j.progress(false)
}

// Update counts source bytes processed; a job is the vma.Progress of its
// transfers.
func (j *job) Update(n int64) {
	j.read.Add(n)
	j.progress(false)
}

func (j *job) progress(final bool) {
	now := time.Now().UnixNano()
	last := j.lastEmit.Load()
	if !final && (now-last < int64(progressEvery) || !j.lastEmit.CompareAndSwap(last, now)) {
		return
	}
	j.emit(BytesSent{Target: j.t.Name, Sent: j.sent.Load(), Read: j.read.Load(), Total: j.pl.total})
}

func (j *job) connectDetail() string {
	var parts []string
	if paths[j.via].needs.ssh {
		parts = append(parts, "SSH to "+j.t.Host)
	}
	if paths[j.via].needs.api {
		parts = append(parts, "the API at "+j.t.apiURL())
	}
	return strings.Join(parts, " and ")
}

// connect opens what the path needs. Under ViaAuto an SSH failure other
// than a bad host key falls back to the plan's Fallback.
func (j *job) connect(ctx context.Context) error {
	if paths[j.via].needs.ssh {
		c, err := j.dialSSH(ctx)
		if err != nil {
			if j.tp.Fallback == "" || errors.Is(err, remote.ErrHostKeyMismatch) || errors.Is(err, remote.ErrHostKeyRevoked) {
				return err
			}
			j.warn(fmt.Sprintf("SSH to %s failed (%v); using --via %s", j.t.Host, err, j.tp.Fallback))
			j.via = j.tp.Fallback
		} else {
			j.ssh = c
			j.ctl = controlSSH{c: c}
		}
	}
	if paths[j.via].needs.api {
		var opts []pve.Option
		if j.t.TLSFingerprint != "" {
			opts = append(opts, pve.WithTLSFingerprint(j.t.TLSFingerprint))
		}
		c, err := pve.New(j.t.apiURL(), j.tp.token, opts...)
		if err != nil {
			j.close()
			return err
		}
		j.api = c
	}
	if err := j.findNode(ctx); err != nil {
		j.close()
		return err
	}
	if j.api != nil {
		j.ctl = controlAPI{c: j.api, node: j.node, poll: j.opts.PollInterval, warn: j.warn}
	}
	return nil
}

func (j *job) dialSSH(ctx context.Context) (*remote.Client, error) {
	cfg, err := sshSettings(j.t, *j.opts)
	if err != nil {
		return nil, err
	}
	if j.t.InsecureIgnoreHostKey {
		j.warn(fmt.Sprintf("not checking the SSH host key of %s (insecure-ignore-host-key)", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))))
	}
	return remote.Dial(ctx, cfg)
}

// sshSettings is how to reach t's host: what the target says first, then
// the OpenSSH client config if the caller read one, else the defaults
// under Home (~/.ssh/known_hosts, ~/.ssh/id_*), and root as the user.
func sshSettings(t *Target, o Options) (remote.Config, error) {
	h, err := parseHost(t.Host)
	if err != nil {
		return remote.Config{}, err
	}
	cfg := remote.Config{Host: h.host, IdentityFiles: t.Identity,
		KnownHostsFile: t.KnownHosts, InsecureIgnoreHostKey: t.InsecureIgnoreHostKey, Timeout: o.SSHTimeout}
	if o.AgentSocket != "" {
		cfg.UseAgent, cfg.AgentSocket = true, o.AgentSocket
	}
	if o.SSHConfig != nil {
		if h.userGiven {
			cfg.User = h.user
		}
		if h.portGiven {
			cfg.Port = h.port
		}
		return o.SSHConfig.Resolve(cfg)
	}
	cfg.User, cfg.Port = h.user, h.port
	if cfg.KnownHostsFile == "" {
		cfg.KnownHostsFile = filepath.Join(o.Home, ".ssh", "known_hosts")
	}
	if len(cfg.IdentityFiles) == 0 && !cfg.UseAgent && o.Home != "" {
		for _, k := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			if p := filepath.Join(o.Home, ".ssh", k); fileExists(p) {
				cfg.IdentityFiles = append(cfg.IdentityFiles, p)
			}
		}
	}
	return cfg, nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// findNode settles the node's name: the target's, else the host's short
// name over SSH, else the API's only node or the one the host names.
func (j *job) findNode(ctx context.Context) error {
	if j.node = j.t.Node; j.node != "" {
		return nil
	}
	if j.ssh != nil {
		n, err := j.ssh.Hostname(ctx)
		if err != nil {
			return fmt.Errorf("finding the node name: %w", err)
		}
		j.node = n
		return nil
	}
	nodes, err := j.api.Nodes(ctx)
	if err != nil {
		return fmt.Errorf("finding the node name: %w", err)
	}
	h, _ := parseHost(j.t.Host)
	short, _, _ := strings.Cut(h.host, ".")
	var names []string
	for _, n := range nodes {
		names = append(names, n.Name)
		if len(nodes) == 1 || (j.t.Host != "" && n.Name == short) {
			j.node = n.Name
		}
	}
	if j.node == "" {
		return fmt.Errorf("the cluster has nodes %s: say which with node", strings.Join(names, ", "))
	}
	return nil
}

func (j *job) close() {
	if j.ssh != nil {
		j.ssh.Close()
	}
}

// checkVMID refuses an ID a guest holds anywhere in the cluster (IDs are
// cluster-wide, for VMs and containers alike), unless Force and it is a
// VM on this node, before anything is sent.
func (j *job) checkVMID(ctx context.Context) error {
	gs, err := j.ctl.guests(ctx)
	if err != nil {
		return err
	}
	vmid := j.t.VMID
	for _, g := range gs {
		if g.vmid != vmid {
			continue
		}
		switch {
		case g.typ == "lxc":
			// Replacing a container with a VM is never what was meant,
			// and Proxmox refuses it even with force.
			return fmt.Errorf("%w: ID %d is taken by container CT %d on node %s", ErrIDTaken, vmid, vmid, g.node)
		case !j.t.Force:
			return fmt.Errorf("%w: VM %d already exists on node %s (force replaces it)", ErrIDTaken, vmid, g.node)
		case g.node != j.node:
			return fmt.Errorf("%w: VM %d exists on node %s; force replaces a VM on the node deployed to (%s) only", ErrIDTaken, vmid, g.node, j.node)
		}
		j.existed = true
		return nil
	}
	j.unlisted = true
	return nil
}

// created records that the restore or create got past Proxmox's up-front
// checks, so a VM with the ID now exists even if the rest fails.
func (j *job) created() { j.touched = true }

// refusedAsExisting explains an "already exists" refusal from the create
// or restore call that the ID check did not foresee: a token without
// VM.Audit does not see every guest. Nothing was created.
func (j *job) refusedAsExisting(err error) error {
	if j.unlisted {
		return fmt.Errorf("%w (the ID check listed no guest %d: the %s cannot see every guest, e.g. a token without VM.Audit; nothing was changed)",
			err, j.t.VMID, j.ctl.describe())
	}
	return err
}

// forcedLoss says what is left of the VM that Force was replacing when a
// step failed, since deploy never removes a VM it did not create.
func (j *job) forcedLoss() string {
	vmid := j.t.VMID
	switch {
	case j.restored:
		return fmt.Sprintf("VM %d was replaced with force and restored, and stays as the failed step left it", vmid)
	case j.via == ViaImport:
		// path_import.go removes the old VM before it creates the new.
		return fmt.Sprintf("VM %d existed and was removed to be replaced with force: its previous disks and config are lost", vmid)
	}
	// qemu-server's restore_vma_archive keeps the config and every disk
	// when it fails before its backup hints (the disk map) are read; past
	// them it has freed the disks at the archive's drive keys and its
	// cleanup leaves a config of "memory: 128" listing the others as
	// unused disks (pvesim/qmrestore reproduces both).
	return fmt.Sprintf("VM %d existed and the restore replacing it with force failed: if it failed before reading the archive's disk map the VM is as it was; "+
		"past that Proxmox has reset its config and freed the disks the archive restores (the others stay, as unused disks): check it on the node", vmid)
}

// undo handles a failure once the restore may have begun. Proxmox leaves
// a failed restore's config behind (and the VM after a failed template or
// start), so a VM this run created is removed, and a warning says so; a
// VM replaced with Force is gone either way, which the error says.
func (j *job) undo(ctx context.Context, err error) error {
	if !j.touched {
		return err
	}
	vmid := j.t.VMID
	if j.existed {
		return fmt.Errorf("%w; %s", err, j.forcedLoss())
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	derr := j.do(StepUndo, fmt.Sprintf("remove VM %d, which this run created", vmid), func() error {
		return j.ctl.destroy(ctx, vmid)
	})
	switch {
	case derr == nil:
		j.warn(fmt.Sprintf("removed VM %d, which this deploy had created", vmid))
	case errors.Is(derr, errNothingToRemove):
	default:
		j.warn(fmt.Sprintf("VM %d was left behind: removing it failed: %v", vmid, derr))
	}
	return err
}

// waitTask waits for a task of the API.
func (j *job) waitTask(ctx context.Context, upid pve.UPID) error {
	return controlAPI{c: j.api, node: j.node, poll: j.opts.PollInterval}.wait(ctx, upid)
}

// finishVM is every path's finish: the VM's own name if it came from an
// archive shared with other targets, then template or start through the
// path's control, each confirmed.
func (j *job) finishVM(ctx context.Context) error {
	if err := j.rename(ctx); err != nil {
		return err
	}
	vmid := j.t.VMID
	switch {
	case j.t.Template:
		return j.do(StepTemplate, fmt.Sprintf("make VM %d a template (%s)", vmid, j.ctl.describe()), func() error {
			return j.ctl.template(ctx, vmid)
		})
	case j.t.starts():
		return j.do(StepStart, fmt.Sprintf("start VM %d (%s)", vmid, j.ctl.describe()), func() error {
			return j.ctl.start(ctx, vmid)
		})
	}
	return nil
}
