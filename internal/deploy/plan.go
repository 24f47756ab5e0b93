package deploy

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/vmatool/vmatool/internal/pve"
	"github.com/vmatool/vmatool/internal/remote"
)

// Options are what a deployment needs beyond its targets that a library
// may not look up itself: the caller passes the environment in.
type Options struct {
	// Home is the user's home folder, for the defaults
	// ~/.ssh/known_hosts and ~/.ssh/id_{ed25519,ecdsa,rsa}.
	Home string
	// AgentSocket is SSH_AUTH_SOCK's value; "" uses no agent.
	AgentSocket string
	// SSHConfig, if set, is the OpenSSH client config the caller read
	// (~/.ssh/config or a file the user named): a target's host may be
	// one of its aliases, and its HostName, Port, User, IdentityFile,
	// IdentitiesOnly, UserKnownHostsFile and ProxyJump apply where the
	// target does not say otherwise.
	SSHConfig *remote.SSHConfig
	// Token is PVE_TOKEN's value, used by targets without a token file.
	Token string
	// TempDir holds the disk images ViaImport converts before uploading
	// them (an upload needs the file's length up front). Required when a
	// target imports an image that needs converting, or an archive.
	TempDir string
	// Now names the archives and uploads; the zero value means the time
	// NewPlan runs.
	Now time.Time
	// Parallel is how many targets Run deploys at once; 0 means 1.
	Parallel int
	// Chain, if set, receives the line that shows a qcow2 image's backing
	// chain, once per target that opens it.
	Chain func(line string)
	// PollInterval is how often task states are asked; 0 means
	// pve.DefaultPollInterval.
	PollInterval time.Duration
	// SSHTimeout bounds connecting to a node; 0 means the transport's
	// default.
	SSHTimeout time.Duration
}

// Plan is what Run will do: per target, the restore path, the steps and
// the config the VM gets. It is data: print it (String, or JSON with its
// tags) for a dry run.
type Plan struct {
	Source   string       `json:"source"`
	Format   string       `json:"format"`
	Parallel int          `json:"parallel"`
	Targets  []TargetPlan `json:"targets"`

	opts Options
	// placed says Place ran: it reads the cluster once per plan.
	placed bool
}

// TargetPlan is the plan for one target.
type TargetPlan struct {
	Target Target `json:"target"`
	// Via is the path Run takes; with ViaAuto it is ViaSSH when a host is
	// given, and Fallback (ViaImport) is taken if SSH then fails and a
	// token is at hand.
	Via      Via `json:"via"`
	Fallback Via `json:"fallback,omitempty"`
	// Node is the node the VM goes to: the target's, or the one Place
	// chose for NodeAuto (Placement says why). Empty means the host's
	// own node, or the API's only one, found when connecting.
	Node      string     `json:"node,omitempty"`
	Placement *Placement `json:"placement,omitempty"`
	// Storage is where the VM's disks go.
	Storage string   `json:"storage"`
	Steps   []string `json:"steps"`
	// QemuServerConf is the VM's qemu-server.conf: the one generated for
	// an image (or given with Config), or the archive's.
	QemuServerConf string `json:"qemu-server.conf"`
	// Config is the VM's config as the path hands it to Proxmox: the
	// qemu-server.conf in the archive, or the create call's parameters.
	Config string `json:"config"`
	// Archive is the archive's file name on the node, for paths that
	// store one.
	Archive string `json:"archive,omitempty"`
	// PostRestore are the settings StepConfigure applies once the VM is
	// restored (a path whose create call takes them has them in Config
	// instead).
	PostRestore map[string]string `json:"post-restore,omitempty"`
	// Shares names the targets, this one among them, that receive one
	// archive, packed once with the first one's settings and streamed to
	// each (see share.go); Config is then that archive's.
	Shares []string `json:"shares,omitempty"`

	token    pve.Token
	hasToken bool
	share    *sharePlan
	// memory and disk are what the VM takes, in bytes: its configured
	// memory and its disks' virtual size, for placement.
	memory, disk uint64
	// placeErr is why Place could not place the target.
	placeErr error
}

// NewPlan validates every target completely (Target.Validate, the token,
// the source as each target's settings open it) before anything
// connects, and plans each. Target names must be unique; an empty name
// becomes the host, or "target<N>".
func NewPlan(src *Source, targets []Target, opts Options) (*Plan, error) {
	if len(targets) == 0 {
		return nil, errors.New("deploy: no targets")
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.Parallel < 1 {
		opts.Parallel = 1
	}
	p := &Plan{Source: src.Path, Format: src.Format, Parallel: opts.Parallel, opts: opts}
	if src.Archive() {
		p.Format += "+" + string(src.Compression)
	}
	names := map[string]bool{}
	for i, t := range targets {
		if t.Name == "" {
			t.Name = fmt.Sprintf("target%d", i+1)
			if len(targets) == 1 && t.Host != "" {
				t.Name = t.Host
			}
		}
		if names[t.Name] {
			return nil, &TargetError{Msg: fmt.Sprintf("two targets are named %q", t.Name)}
		}
		names[t.Name] = true
		tp, err := planTarget(src, t, opts)
		if err != nil {
			return nil, err
		}
		p.Targets = append(p.Targets, *tp)
	}
	if err := planShares(p, src); err != nil {
		return nil, err
	}
	return p, nil
}

func planTarget(src *Source, t Target, opts Options) (*TargetPlan, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	via, _ := t.via()
	tp := &TargetPlan{Target: t, Via: via, Storage: t.Storage}
	if t.Node != NodeAuto {
		tp.Node = t.Node
	}
	token, err := pve.LoadToken(t.TokenFile, opts.Token)
	switch {
	case err == nil:
		tp.token, tp.hasToken = token, true
	case !errors.Is(err, pve.ErrNoToken):
		return nil, &TargetError{Target: t.Name, Msg: err.Error()}
	}
	if via == ViaAuto {
		tp.Via = ViaSSH
		if t.Host == "" {
			tp.Via = ViaImport
		} else if tp.hasToken {
			tp.Fallback = ViaImport
		}
	}
	for _, v := range []Via{tp.Via, tp.Fallback} {
		if v != "" && paths[v].needs.api && !tp.hasToken {
			return nil, &TargetError{Target: t.Name, Msg: fmt.Sprintf("--via %s needs an API token: a token file or PVE_TOKEN (USER@REALM!TOKENID=SECRET)", v)}
		}
		if v == ViaImport && opts.TempDir == "" {
			return nil, &TargetError{Target: t.Name, Msg: "--via import converts disk images in a temporary folder, and none was given"}
		}
	}
	pl, err := openPayload(src, &t, opts.Now, opts.Chain)
	if err != nil {
		return nil, err
	}
	defer pl.close()
	if t.Wait == WaitAgent && !agentEnabled(pl.config) {
		return nil, &TargetError{Target: t.Name, Msg: "wait agent: the VM's config does not enable the QEMU guest agent (agent: 1; the generated config has it unless --agent=false)"}
	}
	tp.QemuServerConf = string(pl.config)
	tp.Config = string(pl.config)
	tp.memory = configMemory(pl.config)
	for _, d := range pl.devices {
		tp.disk += uint64(d.size)
	}
	paths[tp.Via].plan(tp, pl)
	if len(pl.postRestore) > 0 && !paths[tp.Via].createsWhole {
		tp.PostRestore = map[string]string{}
		mergePostRestore(tp.PostRestore, pl.postRestore)
	}
	if tp.Fallback != "" {
		tp.Steps = append(tp.Steps, fallbackStep(&tp.Target, tp.Fallback))
	}
	return tp, nil
}

func fallbackStep(t *Target, v Via) string {
	return fmt.Sprintf("if SSH to %s fails (other than over its host key), --via %s instead", t.Host, v)
}

// where names the node a target goes to, for plans.
func (tp *TargetPlan) where() string {
	t := &tp.Target
	switch {
	case t.Host != "" && paths[tp.Via].needs.ssh:
		h, _ := parseHost(t.Host)
		dest := h.user + "@" + h.host
		if h.port != 22 {
			dest += fmt.Sprintf(" (port %d)", h.port)
		}
		return dest
	default:
		return t.apiURL()
	}
}

// String shows the plan as text: per target a line, its steps and its
// config.
func (p *Plan) String() string {
	var b strings.Builder
	p.WriteText(&b)
	return b.String()
}

// WriteText writes the plan as String shows it: per target a line, the
// node (and why, when placed) and storage, the steps, the
// qemu-server.conf and, where the path hands Proxmox something else, the
// create call's parameters.
func (p *Plan) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, tp := range p.Targets {
		t := &tp.Target
		fmt.Fprintf(&b, "%s: VM %d on %s via %s", t.Name, t.VMID, tp.where(), tp.Via)
		if t.Node != "" {
			fmt.Fprintf(&b, " (node %s)", t.Node)
		}
		b.WriteString("\n")
		fmt.Fprintf(&b, "  node: %s\n", tp.nodeLine())
		fmt.Fprintf(&b, "  storage: %s\n", tp.Storage)
		for i, s := range tp.Steps {
			fmt.Fprintf(&b, "  %d. %s\n", i+1, s)
		}
		block := func(title, text string) {
			fmt.Fprintf(&b, "  %s:\n", title)
			for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
				fmt.Fprintf(&b, "    %s\n", line)
			}
		}
		block("qemu-server.conf", tp.QemuServerConf)
		if tp.Config != tp.QemuServerConf {
			block("create parameters", tp.Config)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// nodeLine says which node the VM goes to, and why when Place chose it.
func (tp *TargetPlan) nodeLine() string {
	switch {
	case tp.Placement != nil:
		pl := tp.Placement
		s := fmt.Sprintf("%s, placed by node auto (from %s): the most free memory, %s of %s, for %s; %s free on %s for %s of disks",
			tp.Node, pl.From, humanSize(pl.FreeMem), humanSize(pl.MaxMem), humanSize(pl.Memory), humanSize(pl.FreeDisk), tp.Storage, humanSize(pl.Disk))
		if len(pl.PassedOver) > 0 {
			s += "; passed over: " + strings.Join(pl.PassedOver, ", ")
		}
		return s
	case tp.Target.Node == NodeAuto && tp.placeErr != nil:
		return "auto, and none fits: " + tp.placeErr.Error()
	case tp.Target.Node == NodeAuto:
		return "auto (chosen when the plan is placed)"
	case tp.Node != "":
		return tp.Node
	case paths[tp.Via].needs.ssh:
		return "the host's own (its uname -n, read when connecting)"
	}
	return "the API's only node, or the one named like the host (read when connecting)"
}

// checkStep is the plan's line for the VM ID check.
func checkStep(t *Target, how string) string {
	s := fmt.Sprintf("check that ID %d is free in the cluster (VMs and containers, %s)", t.VMID, how)
	if t.Force {
		s = fmt.Sprintf("check that ID %d is free in the cluster or a VM on this node (VMs and containers, %s); a VM it holds is replaced (--force)", t.VMID, how)
	}
	return s
}

// finishSteps are the plan's lines for template or start, and what
// follows them: the wait for the guest agent and HA.
func finishSteps(t *Target, how string) []string {
	var steps []string
	switch {
	case t.Template:
		steps = append(steps, fmt.Sprintf("make VM %d a template (%s) and confirm \"template: 1\" in its config", t.VMID, how))
	case t.starts():
		steps = append(steps, fmt.Sprintf("start VM %d (%s) as a step of its own, and confirm it started", t.VMID, how))
	}
	// The paths name their control by its describe; the API's calls
	// differ from the commands over SSH.
	api := how == (controlAPI{}).describe()
	if t.Wait == WaitAgent {
		steps = append(steps, waitStep(t, api))
	}
	if t.HA {
		steps = append(steps, haStep(t, api))
	}
	if t.DestroyOnFailure && (t.Wait != "" || t.HA) {
		steps = append(steps, fmt.Sprintf("if that fails, stop and remove VM %d (destroy-on-failure)", t.VMID))
	}
	return steps
}
