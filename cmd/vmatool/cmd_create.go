package main

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"

	"github.com/vmatool/vmatool/internal/recipe"
	"github.com/vmatool/vmatool/vma"
)

func init() {
	commands = append(commands, command{name: "create", summary: "Proxmox-compatible form: vmatool create <file> [-c cfg]... [-d format=raw:<devname>=<path>]...", run: runCreate})
}

const createHelp = `Usage: vmatool create <file> [-v] [-c <config>]... [-d format=<fmt>:[<devname>=]<path>]...
       vmatool create <file> [-v] [-c <config>]... [<devname>=]<path>...

The arguments of Proxmox's "vma create", so scripts written for it (such as
nixpkgs' proxmox image builder) work unchanged. Configs are stored under
their base names, byte for byte, and devices in argument order; a device
without <devname>= is named disk<N>. <fmt> is raw or qcow2. <file> must not
exist; it may also be an existing FIFO or exec:<command> (the archive is
piped into "sh -c <command>"). The archive is uncompressed, as Proxmox's.
For the same inputs, uuid and ctime the archive is byte-identical to the
one Proxmox's tool writes.

OPTIONS:

EXAMPLES:
  vmatool create vzdump-qemu-9999.vma -c qemu-server.conf -d format=raw:drive-virtio0=nixos.img
  vmatool create 'exec:zstd -T0 > backup.vma.zst' -c qemu-server.conf -d format=qcow2:drive-scsi0=disk.qcow2

EXIT STATUS:
  0 ok, 1 error (the output is removed), 2 usage error, 130 interrupted.
`

func runCreate(ctx context.Context, s *streams, args []string) error {
	fs := newFlags("create")
	verbose := fs.BoolP("verbose", "v", false, "print progress and per-image lines to standard error, as Proxmox does")
	configs := fs.StringArrayP("config", "c", nil, "config file (repeatable)")
	devs := fs.StringArrayP("device", "d", nil, "format=<fmt>:[<devname>=]<path> (repeatable)")
	uuidFlag := fs.String("uuid", "", "vmatool extension: archive uuid (default random)")
	ctimeFlag := fs.Int64("ctime", -1, "vmatool extension: creation time in seconds since the epoch (default now)")
	if err := parseFlags(s, fs, createHelp, args); err != nil {
		return err
	}
	if fs.NArg() < 1 {
		return usagef("missing <file>")
	}
	target := fs.Arg(0)
	legacy := fs.Args()[1:]
	if len(*devs) > 0 && len(legacy) > 0 {
		return usagef("Unexpected extra argument - specify all devices via '-d'")
	}
	var disks []recipe.Disk
	for i, spec := range *devs {
		format, rest, ok := strings.Cut(spec, ":")
		f, hasFormat := strings.CutPrefix(format, "format=")
		if !ok || !hasFormat || f == "" {
			return usagef("No format specified for device: '%s'", spec)
		}
		n, p := splitDevice(rest, i)
		disks = append(disks, recipe.Disk{Name: n, Path: p, Format: f})
	}
	for i, spec := range legacy {
		n, p := splitDevice(spec, i)
		disks = append(disks, recipe.Disk{Name: n, Path: p})
	}
	idOpts, err := identityOptions(s, *uuidFlag, *ctimeFlag, fs.Changed("ctime"), false)
	if err != nil {
		return err
	}

	var cfgs []vma.Config
	for _, p := range *configs {
		c, err := recipe.ReadConfigs(p)
		if err != nil {
			return fmt.Errorf("Unable to read file: %s: %w", p, err)
		}
		cfgs = append(cfgs, c...)
	}
	pack, err := recipe.Open(recipe.Spec{Configs: cfgs, Disks: disks, Verbatim: true}, append(idOpts, recipe.WithNow(s.now()))...)
	if err != nil {
		return recipeError(err)
	}
	defer pack.Close()

	var sink *archiveSink
	if cmdline, ok := strings.CutPrefix(target, "exec:"); ok {
		sink, err = execSink(ctx, s, cmdline)
	} else {
		sink, err = fileSink(target, false)
	}
	if err != nil {
		return err
	}
	var p vma.Progress
	if *verbose {
		p = &percentPrinter{w: s.err, total: pack.Size}
	}
	if err := pack.WriteArchive(ctx, sink, vma.None, 0, p); err != nil {
		if werr := sink.abort(); werr != nil {
			err = fmt.Errorf("%w (%v)", err, werr)
		}
		return fmt.Errorf("creating vma archive failed: %w", err)
	}
	if err := sink.finish(); err != nil {
		return fmt.Errorf("creating vma archive failed: %w", err)
	}
	if *verbose {
		for i, d := range pack.Devices {
			size, stored := d.Disk.Size(), pack.StoredBytes(i)
			fmt.Fprintf(s.err, "image %s: size=%d zeros=%d saved=%d\n", d.Name, size, size-stored, size-stored)
		}
	}
	return nil
}

// splitDevice splits [<devname>=]<path>; without a name, vma create calls
// device i "disk<i>".
func splitDevice(spec string, i int) (name, path string) {
	if n, p, ok := strings.Cut(spec, "="); ok {
		return n, p
	}
	return fmt.Sprintf("disk%d", i), spec
}

// execSink pipes the archive into "sh -c cmdline", as vma create's exec:
// target does (vzdump uses it to compress on the fly).
func execSink(ctx context.Context, s *streams, cmdline string) (*archiveSink, error) {
	cmd := exec.CommandContext(ctx, "sh", "-c", cmdline)
	cmd.Stdout, cmd.Stderr = s.childStdout(), s.err
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	k := &archiveSink{w: in, direct: in}
	k.wait = func() error {
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("exec:%s: %w", cmdline, err)
		}
		return nil
	}
	return k, nil
}

// percentPrinter prints Proxmox's "progress N% done/total zeros" lines
// whenever the percentage changes.
type percentPrinter struct {
	mu    sync.Mutex
	w     io.Writer
	total int64
	done  int64
	last  int64
}

func (p *percentPrinter) Update(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	if p.total == 0 {
		return
	}
	if pct := p.done * 100 / p.total; pct != p.last {
		p.last = pct
		fmt.Fprintf(p.w, "progress %d%% %d/%d\n", pct, p.done, p.total)
	}
}
