package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"
	"github.com/vmatool/vmatool/internal/deploy"
)

const deployHelp = `Usage: vmatool deploy [options] SOURCE

Turns SOURCE (a raw or qcow2 image, or a .vma[.zst|.gz|.lzo] archive) into a
VM, or a template, on a Proxmox VE node, in one command. First it checks
that the VM ID is free in the cluster (VMs and containers; --force replaces
a VM on the node), then it takes one of four restore paths (--via):

  ssh         pack the image, zstd-compressed, and stream it over SSH into
              <dump-dir>/vzdump-qemu-<vmid>-<date>.vma.zst (as .part, renamed
              only when complete), then qmrestore it over SSH
  ssh-stream  nothing stored on the node: the archive goes zstd-compressed
              over SSH into "zstd -dc | qmrestore - VMID" on the node
  api         upload over SSH as with ssh, restore through the Proxmox API
  import      no SSH at all: each disk is uploaded as a qcow2 image to a
              storage with import content (--import-storage, default local;
              Proxmox VE 8.4 or later), the VM is created through the API
              importing them, and the uploads are deleted
  auto        (the default) ssh when SSH to --host connects, else import
              when an API token is given

Then it makes the VM a template (--template) or starts it (--start) and
confirms either, and deletes what it uploaded. If a step after the restore
fails, a VM this run created is removed again (Proxmox leaves a failed
restore's config behind); a VM replaced with --force is reported lost.

The API needs a token from --token-file or $PVE_TOKEN (never a flag), and
its certificate is verified, or pinned with --tls-fingerprint. The SSH host
key must be in --known-hosts (default ~/.ssh/known_hosts); keys come from
--identity, ssh-agent, or ~/.ssh/id_*.

A qcow2 SOURCE's backing chain is followed through regular files only and
shown on standard error unless --quiet; --no-backing refuses a SOURCE that
has a backing file. Without --config, the VM config is generated from
--name, --memory, ...

Once made (and started), --wait agent starts the VM if --start did not,
waits up to --wait-timeout for its QEMU guest agent to answer (the generated
config enables it), and shows its IP addresses (loopback and link-local left
out); a VM whose agent does not answer in time is a failed target. --ha then
puts the VM under the HA manager, in --ha-group on Proxmox VE 8 and older
(9 has HA rules instead, and the group is refused before anything is sent).
When waiting or HA fails the VM stays for inspection, unless
--destroy-on-failure stops and removes it.

--node auto places each VM on a node of the cluster: one that is online, has
--storage (with room for the disks' virtual size) and, of those, the most
free memory, as GET /cluster/resources says (or pvesh get /cluster/resources
over SSH, for the SSH paths). The targets of one run are spread: each placed
VM's memory and disks count against its node before the next is placed. A
VM placed on another node than --host's goes there over SSH by the node's
name (with --host's user and port), which the SSH config or DNS must
resolve. The plan and the results show each VM's node.

Many targets: --targets FILE is a JSON list of objects with the keys "name",
"tags" (for --tag), "host", "vmid", "storage", "via", "vm-name", "vm-tags",
and every other option above by its flag name; or an object whose keys are
the targets' names, as nix eval --json .#deploy.targets prints an attribute
set. FILE "-" is standard input, for a pipe from nix eval. Unknown keys are
refused with their path (targets.web1.strage). Pick targets with --tag,
--target, or --on @web,db1 (names, and tags after @; repeatable), run
--parallel at a time. Options given on the command line win over the file.
One failure does not stop the others; a table of results (or --json) ends
the run. --dry-run prints each target's plan (path, node, storage, steps,
the qemu-server.conf) and changes nothing; with --node auto it reads the
cluster's resources to show the placement.

OPTIONS:

EXAMPLES:
  vmatool deploy --host root@pve1 --vmid 120 --storage local-lvm --start result/nixos.qcow2
  vmatool deploy --host pve1 --vmid 9000 --via ssh-stream --template --name nixos-base nixos.img
  PVE_TOKEN=... vmatool deploy --api-url https://pve1:8006 --vmid 120 --via import --tls-fingerprint AB:CD:... nixos.qcow2
  vmatool deploy --targets targets.json --tag web --parallel 4 --start --force nixos.qcow2
  nix eval --json .#deploy.targets | vmatool deploy --targets - --dry-run nixos.qcow2
  vmatool deploy --targets targets.json --on @web,db1 --node auto --wait agent --ha nixos.qcow2
  vmatool deploy --targets targets.json --dry-run nixos.qcow2

EXIT STATUS:
  0 every target succeeded, 1 one failed (see the table), 2 usage error.
`

// deployOptions are deploy's flags and argument (SOURCE): the command
// line's target, and the flags that pick and run targets.
type deployOptions struct {
	cmdLine
	// target is the defaults with the command line's per-target flags:
	// the one target without --targets, and what overrides each target
	// of the file with it (override).
	target    deploy.Target
	targets   string
	tags      []string
	names     []string
	on        []string
	parallel  int
	dryRun    bool
	json      bool
	quiet     bool
	progress  bool
	window    maxWindow
	sshConfig string
}

func (o *deployOptions) addFlags(fs *pflag.FlagSet) {
	o.target = deploy.DefaultTarget()
	bindTargetFlags(fs, &o.target)
	fs.StringVar(&o.targets, "targets", "", "JSON file of targets (- for standard input)")
	fs.StringArrayVar(&o.tags, "tag", nil, "deploy the targets with this tag (repeatable)")
	fs.StringArrayVar(&o.names, "target", nil, "deploy the target with this name (repeatable)")
	fs.StringArrayVar(&o.on, "on", nil, "deploy these targets: names and @tags, comma-separated (repeatable)")
	fs.IntVar(&o.parallel, "parallel", 1, "targets deployed at once")
	fs.BoolVar(&o.dryRun, "dry-run", false, "print the plan and touch nothing")
	fs.BoolVar(&o.json, "json", false, "print the results (or the plan) as JSON")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "no progress display")
	fs.StringVar(&o.sshConfig, "ssh-config", "", "OpenSSH client config to read instead of ~/.ssh/config and /etc/ssh/ssh_config (Host aliases, ProxyJump, ...)")
	fs.Var(&o.window, "max-window", "largest zstd window to decode of an archive SOURCE, e.g. 128M (decoding holds one window in memory)")
	addProgressFlag(fs, &o.progress)
}

// override puts over t, a target read from a --targets file, each
// per-target flag the command line gave, with its value there: the
// file's values are the defaults, and the command line wins. The values
// go from flag to flag through bindTargetFlags' own definitions, bound
// once onto the command line's target and once onto t, so that every
// per-target flag, and any added later, overrides alike.
func (o *deployOptions) override(t *deploy.Target) error {
	cli := o.target
	from := pflag.NewFlagSet("command line", pflag.ContinueOnError)
	bindTargetFlags(from, &cli)
	onto := pflag.NewFlagSet("target", pflag.ContinueOnError)
	bindTargetFlags(onto, t) // with t's values as defaults: binding changes nothing
	var err error
	from.VisitAll(func(f *pflag.Flag) {
		if err != nil || !o.isGiven(f.Name) {
			return
		}
		dst := onto.Lookup(f.Name).Value
		if list, ok := f.Value.(pflag.SliceValue); ok {
			// A list flag's text is CSV inside brackets: copy its items.
			err = dst.(pflag.SliceValue).Replace(list.GetSlice())
		} else {
			err = dst.Set(f.Value.String())
		}
		if err != nil {
			err = fmt.Errorf("--%s over a target of %s: %w", f.Name, o.targets, err)
		}
	})
	return err
}

// runDeploy plans the targets and, unless --dry-run, deploys them.
func runDeploy(ctx context.Context, s *streams, o *deployOptions) error {
	source, err := oneArg(o.args, "SOURCE (an image or an archive)")
	if err != nil {
		return err
	}
	if source == "-" {
		return usagef("SOURCE cannot be standard input: deploy reads an image at random offsets, and a source once per target; write it to a file first")
	}
	if o.target.Config == "-" {
		return usagef("--config -: the config is read once per target, and standard input only once; write it to a file first")
	}
	if o.parallel < 1 {
		return usagef("--parallel must be at least 1")
	}
	s = s.withProgress(o.progress)
	targets := []deploy.Target{o.target}
	onNames, onTags, err := onSelection(o.on)
	if err != nil {
		return usageError{err.Error()}
	}
	if o.targets != "" {
		names, tags := append(slices.Clip(o.names), onNames...), append(slices.Clip(o.tags), onTags...)
		var all []deploy.Target
		if o.targets == "-" {
			// nix eval --json .#deploy.targets | vmatool deploy --targets - ...
			data, rerr := io.ReadAll(s.in)
			if rerr != nil {
				return fmt.Errorf("reading the targets from standard input: %w", rerr)
			}
			all, err = parseTargets("<stdin>", data, o.override)
		} else {
			all, err = loadTargets(o.targets, o.override)
		}
		if err != nil {
			return usageError{err.Error()}
		}
		if targets, err = selectTargets(all, names, tags); err != nil {
			return usageError{err.Error()}
		}
	} else if len(o.names)+len(o.tags)+len(o.on) > 0 {
		return usagef("--tag, --target and --on pick from --targets FILE")
	}

	src, err := deploy.OpenSource(source, o.window.option())
	if err != nil {
		return windowHint(err)
	}
	sshConfig, err := readSSHConfig(s.getenv, o.sshConfig)
	if err != nil {
		return err
	}
	shown := map[string]bool{}
	opts := deploy.Options{
		Home: homeDir(s.getenv), AgentSocket: agentSocket(s.getenv), Token: s.getenv("PVE_TOKEN"),
		SSHConfig: sshConfig,
		TempDir:   tempDir(s.getenv), Now: s.now(), Parallel: o.parallel,
		// Each target opens the image: show its backing chain once.
		Chain: func(line string) {
			if !o.quiet && !shown[line] {
				shown[line] = true
				fmt.Fprintln(s.err, "vmatool: "+line)
			}
		},
	}
	plan, err := deploy.NewPlan(src, targets, opts)
	switch {
	case errors.Is(err, deploy.ErrInvalidTarget):
		return usageError{err.Error()}
	case err != nil:
		return recipeError(err)
	}
	// Targets sharing an archive write one between them.
	scaleMemoryLimit(s.getenv, plan.Packs())
	// --node auto: where each VM goes is part of the plan, shown before
	// anything runs. A target that cannot be placed is shown so in a dry
	// run, and fails alone in a run.
	placeErr := plan.Place(ctx)
	if o.dryRun {
		var err error
		if o.json {
			err = writeJSON(s.out, plan)
		} else {
			err = plan.WriteText(s.out)
		}
		if err != nil {
			return err
		}
		return placeErr
	}

	r := newDeployRenderer(s, o.quiet || o.json)
	results := deploy.Run(ctx, plan, src, r.event)
	r.finish()
	if o.json {
		if err := writeJSON(s.out, results); err != nil {
			return err
		}
	} else {
		writeResults(s.out, results)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	for _, res := range results {
		if !res.OK {
			return errSilent
		}
	}
	return nil
}

// writeResults prints the table of results, with each VM's node, and its
// addresses when any target waited for its guest agent.
func writeResults(w io.Writer, results []deploy.Result) {
	addrs := slices.ContainsFunc(results, func(r deploy.Result) bool { return len(r.Addresses) > 0 })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "TARGET\tHOST\tNODE\tVMID\tVIA\tRESULT\tTIME\tDETAIL"
	if addrs {
		head += "\tADDRESSES"
	}
	fmt.Fprintln(tw, head)
	for _, r := range results {
		res := "ok"
		if !r.OK {
			res = "FAILED"
		}
		node := r.Node
		if node == "" {
			node = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%.1fs\t%s", r.Target, r.Host, node, r.VMID, r.Via, res, r.Seconds, strings.ReplaceAll(r.Detail, "\t", " "))
		if addrs {
			fmt.Fprintf(tw, "\t%s", strings.Join(r.Addresses, " "))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}
