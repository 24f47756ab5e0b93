package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
)

func init() {
	commands = append(commands, command{name: "deploy", summary: "turn an image or archive into a VM or template on a Proxmox node", run: runDeploy})
}

const deployHelp = `Usage: vmatool deploy [options] SOURCE

Turns SOURCE (a raw or qcow2 image, or a .vma[.zst|.gz|.lzo] archive) into a
VM, or a template, on a Proxmox VE node, in one command:

  1. checks that the VM id is free in the cluster (unless --force);
  2. packs the image and compresses it on the fly, streaming it over SSH into
     <dump-dir>/vzdump-qemu-<vmid>-<date>.vma.zst.part, renamed into place
     only when complete (a dropped connection leaves no .part behind);
  3. restores it with qmrestore over SSH (--restore ssh, the default) or
     through the Proxmox VE API (--restore api, token from --token-file or
     $PVE_TOKEN, never from a flag);
  4. optionally makes it a template or starts it, and deletes the archive.
With --stream nothing is stored on the node: the archive is piped straight
into "qmrestore -".

A qcow2 SOURCE's backing chain is followed through regular files only and
shown on standard error unless --quiet; --no-backing refuses a SOURCE that
has a backing file.

The node's SSH host key must be in --known-hosts (default ~/.ssh/known_hosts);
keys come from --identity, ssh-agent, or ~/.ssh/id_*. The API's certificate is
verified, or pinned with --tls-fingerprint.

Without --config, the VM config is generated from --name, --memory, ...;
either way it maps the disk (#qmdump#map) as qmrestore needs.

Many targets: --targets FILE is a JSON list of objects with "name", "host",
"vmid", "storage", "tags" and any other option above by its flag name (VM
tags as "vm-tags"); pick them with --tag or --target, run --parallel at a
time. Options given on the command line win over the file. One failure does
not stop the others; a table of results ends the run.

OPTIONS:

EXAMPLES:
  vmatool deploy --host root@pve1 --vmid 120 --storage local-lvm --start result/nixos.qcow2
  vmatool deploy --host pve1 --vmid 9000 --template --name nixos-base nixos.img
  PVE_TOKEN=... vmatool deploy --host pve1 --vmid 120 --restore api --tls-fingerprint AB:CD:... nixos.qcow2
  vmatool deploy --targets targets.json --tag web --parallel 4 --start --force nixos.qcow2
  vmatool deploy --targets targets.json --dry-run nixos.qcow2

EXIT STATUS:
  0 every target succeeded, 1 one failed (see the table), 2 usage error,
  130 interrupted.
`

type deployGlobal struct {
	targets  string
	tags     []string
	names    []string
	parallel int
	dryRun   bool
	json     bool
	quiet    bool
	window   maxWindow
}

func bindDeployGlobal(fs *pflag.FlagSet, g *deployGlobal) {
	fs.StringVar(&g.targets, "targets", "", "JSON file of targets")
	fs.StringArrayVar(&g.tags, "tag", nil, "deploy the targets with this tag (repeatable)")
	fs.StringArrayVar(&g.names, "target", nil, "deploy the target with this name (repeatable)")
	fs.IntVar(&g.parallel, "parallel", 1, "targets deployed at once")
	fs.BoolVar(&g.dryRun, "dry-run", false, "print the plan and touch nothing")
	fs.BoolVar(&g.json, "json", false, "print the results as JSON")
	fs.BoolVarP(&g.quiet, "quiet", "q", false, "no progress display")
	fs.Var(&g.window, "max-window", "largest zstd window to decode of an archive SOURCE, e.g. 128M (decoding holds one window in memory)")
}

func runDeploy(ctx context.Context, s *streams, args []string) error {
	var g deployGlobal
	parse := func() (*pflag.FlagSet, *deployOptions, error) {
		fs := newFlags("deploy")
		o := &deployOptions{}
		bindDeployFlags(fs, o)
		bindDeployGlobal(fs, &g)
		return fs, o, parseFlags(s, fs, deployHelp, args)
	}
	fs, o, err := parse()
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
	scaleMemoryLimit(s.getenv, g.parallel)
	targets := []deployTarget{{name: "default", opts: o}}
	if g.targets != "" {
		all, err := loadTargets(g.targets, parse)
		if err != nil {
			return usageError{err.Error()}
		}
		if targets, err = selectTargets(all, g.names, g.tags); err != nil {
			return usageError{err.Error()}
		}
	} else if len(g.names)+len(g.tags) > 0 {
		return usagef("--tag and --target pick from --targets FILE")
	} else if o.host != "" {
		targets[0].name = o.host
	}
	for _, t := range targets {
		if err := t.opts.validate(); err != nil {
			return usagef("%s: %v", t.name, err)
		}
	}
	src, err := inspectSource(source, g.window.option())
	if err != nil {
		return err
	}
	if src.Archive() && o.config != "" {
		return usagef("--config applies to images; an archive brings its own")
	}

	env := &deployEnv{s: s, src: src, display: newDisplay(s, g.quiet || g.json || g.dryRun), now: s.now()}
	// Each target opens the image: show its backing chain once.
	shown := map[string]bool{}
	chain := func(line string) {
		if !g.quiet && !shown[line] {
			shown[line] = true
			fmt.Fprintln(s.err, "vmatool: "+line)
		}
	}
	deps := make([]*deployment, len(targets))
	for i, t := range targets {
		out, err := prepareOutgoing(src, t.opts, env.now, t.opts.stream, chain)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		defer out.close()
		deps[i] = &deployment{env: env, t: t, o: t.opts, out: out}
	}
	if g.dryRun {
		for _, d := range deps {
			fmt.Fprintln(s.out, d.plan())
		}
		return nil
	}

	results := make([]deployResult, len(deps))
	sem := make(chan struct{}, g.parallel)
	var wg sync.WaitGroup
	for i, d := range deps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = deployOneTarget(ctx, d)
		}()
	}
	wg.Wait()
	env.display.finish()
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
	for _, r := range results {
		if !r.OK {
			return errSilent
		}
	}
	return nil
}

type deployResult struct {
	Target  string  `json:"target"`
	Host    string  `json:"host"`
	VMID    int     `json:"vmid"`
	OK      bool    `json:"ok"`
	Detail  string  `json:"detail"`
	Seconds float64 `json:"seconds"`
	Archive string  `json:"archive,omitempty"`
}

func deployOneTarget(ctx context.Context, d *deployment) deployResult {
	start := time.Now()
	m := d.env.display.add(d.t.name, d.out.total)
	err := d.run(ctx, m)
	d.env.display.remove(m)
	r := deployResult{Target: d.t.name, Host: d.o.host, VMID: d.o.vmid, OK: err == nil, Seconds: time.Since(start).Seconds()}
	if d.o.keepArchive {
		r.Archive = d.remote
	}
	if err != nil {
		r.Detail = errorDetail(err)
		d.env.display.println("%s: failed: %s", d.t.name, r.Detail)
	} else {
		what := "restored"
		if d.o.template {
			what += ", template"
		}
		if d.o.start {
			what += ", started"
		}
		r.Detail = what
	}
	return r
}

func writeResults(w io.Writer, results []deployResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tHOST\tVMID\tRESULT\tTIME\tDETAIL")
	for _, r := range results {
		res := "ok"
		if !r.OK {
			res = "FAILED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%.1fs\t%s\n", r.Target, r.Host, r.VMID, res, r.Seconds, strings.ReplaceAll(r.Detail, "\t", " "))
	}
	tw.Flush()
}
