package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"
	"github.com/vmatool/vmatool/internal/deploy"
)

func init() {
	commands = append(commands, command{name: "deploy", summary: "turn an image or archive into a VM or template on a Proxmox node", run: runDeploy})
}

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

Many targets: --targets FILE is a JSON list of objects with the keys "name",
"tags" (for --tag), "host", "vmid", "storage", "via", "vm-name", "vm-tags",
and every other option above by its flag name. Pick them with --tag or
--target, run --parallel at a time. Options given on the command line win
over the file. One failure does not stop the others; a table of results
(or --json) ends the run. --dry-run prints each target's plan (steps and
config) and touches nothing.

OPTIONS:

EXAMPLES:
  vmatool deploy --host root@pve1 --vmid 120 --storage local-lvm --start result/nixos.qcow2
  vmatool deploy --host pve1 --vmid 9000 --via ssh-stream --template --name nixos-base nixos.img
  PVE_TOKEN=... vmatool deploy --api-url https://pve1:8006 --vmid 120 --via import --tls-fingerprint AB:CD:... nixos.qcow2
  vmatool deploy --targets targets.json --tag web --parallel 4 --start --force nixos.qcow2
  vmatool deploy --targets targets.json --dry-run nixos.qcow2

EXIT STATUS:
  0 every target succeeded, 1 one failed (see the table), 2 usage error.
`

type deployGlobal struct {
	targets   string
	tags      []string
	names     []string
	parallel  int
	dryRun    bool
	json      bool
	quiet     bool
	window    maxWindow
	sshConfig string
}

func bindDeployGlobal(fs *pflag.FlagSet, g *deployGlobal) {
	fs.StringVar(&g.targets, "targets", "", "JSON file of targets")
	fs.StringArrayVar(&g.tags, "tag", nil, "deploy the targets with this tag (repeatable)")
	fs.StringArrayVar(&g.names, "target", nil, "deploy the target with this name (repeatable)")
	fs.IntVar(&g.parallel, "parallel", 1, "targets deployed at once")
	fs.BoolVar(&g.dryRun, "dry-run", false, "print the plan and touch nothing")
	fs.BoolVar(&g.json, "json", false, "print the results (or the plan) as JSON")
	fs.BoolVarP(&g.quiet, "quiet", "q", false, "no progress display")
	fs.StringVar(&g.sshConfig, "ssh-config", "", "OpenSSH client config to read instead of ~/.ssh/config and /etc/ssh/ssh_config (Host aliases, ProxyJump, ...)")
	fs.Var(&g.window, "max-window", "largest zstd window to decode of an archive SOURCE, e.g. 128M (decoding holds one window in memory)")
}

func runDeploy(ctx context.Context, s *streams, args []string) error {
	var g deployGlobal
	// parse binds the flags onto t, its values as defaults, and parses
	// the command line; it runs once per target of a targets file.
	parse := func(t *deploy.Target) (*pflag.FlagSet, error) {
		fs := newFlags("deploy")
		bindTargetFlags(fs, t)
		g = deployGlobal{}
		bindDeployGlobal(fs, &g)
		return fs, parseFlags(s, fs, deployHelp, args)
	}
	cli := deploy.DefaultTarget()
	fs, err := parse(&cli)
	if err != nil {
		return err
	}
	source, err := oneArg(fs, "SOURCE (an image or an archive)")
	if err != nil {
		return err
	}
	if g.parallel < 1 {
		return usagef("--parallel must be at least 1")
	}
	targets := []deploy.Target{cli}
	if g.targets != "" {
		all, err := loadTargets(g.targets, func(t *deploy.Target) error { _, err := parse(t); return err })
		if err != nil {
			return usageError{err.Error()}
		}
		if targets, err = selectTargets(all, g.names, g.tags); err != nil {
			return usageError{err.Error()}
		}
	} else if len(g.names)+len(g.tags) > 0 {
		return usagef("--tag and --target pick from --targets FILE")
	}

	src, err := deploy.OpenSource(source, g.window.option())
	if err != nil {
		return windowHint(err)
	}
	sshConfig, err := readSSHConfig(s.getenv, g.sshConfig)
	if err != nil {
		return err
	}
	shown := map[string]bool{}
	opts := deploy.Options{
		Home: homeDir(s.getenv), AgentSocket: s.getenv("SSH_AUTH_SOCK"), Token: s.getenv("PVE_TOKEN"),
		SSHConfig: sshConfig,
		TempDir:   os.TempDir(), Now: s.now(), Parallel: g.parallel,
		// Each target opens the image: show its backing chain once.
		Chain: func(line string) {
			if !g.quiet && !shown[line] {
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
	if g.dryRun {
		if g.json {
			return writeJSON(s.out, plan)
		}
		return plan.WriteText(s.out)
	}

	r := newDeployRenderer(s, g.quiet || g.json)
	results := deploy.Run(ctx, plan, src, r.event)
	r.finish()
	if g.json {
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

// writeResults prints the table of results.
func writeResults(w io.Writer, results []deploy.Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tHOST\tVMID\tVIA\tRESULT\tTIME\tDETAIL")
	for _, r := range results {
		res := "ok"
		if !r.OK {
			res = "FAILED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%.1fs\t%s\n", r.Target, r.Host, r.VMID, r.Via, res, r.Seconds, strings.ReplaceAll(r.Detail, "\t", " "))
	}
	tw.Flush()
}
