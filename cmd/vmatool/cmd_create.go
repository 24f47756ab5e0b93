package main

import (
	"context"
	"fmt"
	"github.com/spf13/pflag"
	"os/exec"
	"slices"
	"strings"

	"github.com/vmatool/vmatool/internal/recipe"
	"github.com/vmatool/vmatool/vma"
)

const createHelp = `Usage: vmatool create <file> [-v] [-c <config>]... [-d format=<fmt>:[<devname>=]<path>]...
       vmatool create <file> [-v] [-c <config>]... [<devname>=]<path>...

The arguments of Proxmox's "vma create", so scripts written for it (such as
nixpkgs' proxmox image builder) work unchanged. Configs are stored under
their base names, byte for byte (a config given twice is stored once), and
devices in argument order; a device without <devname>= is named disk<N>,
one named vmstate is the VM's RAM state. <fmt> is raw or qcow2. An image
whose size is not a multiple of 512 is rounded up with zeros, as QEMU
measures it. Devices given without -d get Proxmox's deprecation warning.
<file> must not exist; it may also be an existing FIFO, exec:<command>
(the archive is piped into "sh -c <command>"), or "-" for standard output
(never a terminal: redirect it; ./- is a file named -). A VMA archive
given as a device is refused: vmatool convert turns one into images. The
archive is uncompressed, as Proxmox's. For the same inputs, uuid and ctime
the archive is byte-identical to the one Proxmox's tool writes.

With -v, standard error gets Proxmox's lines: "progress N% DONE/TOTAL
ZEROS" whenever the percentage changes, then "image NAME: size=S zeros=Z
saved=S-Z" per device, where zeros counts the 4 KiB blocks not stored,
those past the end of the device's last 64 KiB cluster included.

OPTIONS:

EXAMPLES:
  vmatool create vzdump-qemu-9999.vma -c qemu-server.conf -d format=raw:drive-virtio0=nixos.img
  vmatool create 'exec:zstd -T0 > backup.vma.zst' -c qemu-server.conf -d format=qcow2:drive-scsi0=disk.qcow2

EXIT STATUS:
  0 ok, 1 error (the output is removed), 2 usage error (also <file> "-" on
  a terminal), 130 interrupted.
`

// createOptions are create's flags and arguments (<file>, then devices
// in the positional form).
type createOptions struct {
	cmdLine
	verbose bool
	configs []string
	devices []string
	uuid    string
	ctime   int64 // only if given: -1 is refused, not "now"
}

func (o *createOptions) addFlags(fs *pflag.FlagSet) {
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "print progress and per-image lines to standard error, as Proxmox does")
	fs.StringArrayVarP(&o.configs, "config", "c", nil, "config file (repeatable)")
	fs.StringArrayVarP(&o.devices, "device", "d", nil, "format=<fmt>:[<devname>=]<path> (repeatable)")
	fs.StringVar(&o.uuid, "uuid", "", "vmatool extension: archive uuid (default random)")
	fs.Int64Var(&o.ctime, "ctime", -1, "vmatool extension: creation time in seconds since the epoch (default now)")
}

// runCreate writes the archive as Proxmox's vma create does.
func runCreate(ctx context.Context, s *streams, o *createOptions) error {
	if len(o.args) < 1 {
		return usagef("missing <file>")
	}
	target := o.args[0]
	legacy := o.args[1:]
	if len(o.devices) > 0 && len(legacy) > 0 {
		return usagef("Unexpected extra argument - specify all devices via '-d'")
	}
	if slices.Contains(o.configs, "-") {
		return usagef("-c -: a config is stored under its file name, and standard input has none; write it to a file (such as qemu-server.conf) first")
	}
	if target == "-" && s.outIsTTY {
		return errTerminal
	}
	var disks []recipe.Disk
	for i, spec := range o.devices {
		format, rest, ok := strings.Cut(spec, ":")
		f, hasFormat := strings.CutPrefix(format, "format=")
		if !ok || !hasFormat || f == "" {
			return usagef("No format specified for device: '%s'", spec)
		}
		n, p := splitDevice(rest, i)
		if err := refuseArchive(f, p); err != nil {
			return err
		}
		disks = append(disks, recipe.Disk{Name: n, Path: p, Format: f})
	}
	for i, spec := range legacy {
		warnPositionalDevice(s, spec)
		n, p := splitDevice(spec, i)
		disks = append(disks, recipe.Disk{Name: n, Path: p})
	}
	idOpts, err := identityOptions(s, o.uuid, o.ctime, o.isGiven("ctime"), false)
	if err != nil {
		return err
	}

	var cfgs []vma.Config
	for _, p := range o.configs {
		c, err := recipe.ReadConfigs(p)
		if err != nil {
			return fmt.Errorf("Unable to read file: %s: %w", p, err)
		}
		for _, x := range c {
			cfgs = appendConfig(cfgs, x)
		}
	}
	pack, err := recipe.Open(recipe.Spec{Configs: cfgs, Disks: disks, Verbatim: true}, append(idOpts, recipe.WithNow(s.now()))...)
	if err != nil {
		return recipeError(err)
	}
	defer pack.Close()

	var stats *writeStats
	if o.verbose {
		if stats, err = watchCreate(s.err, pack); err != nil {
			return err
		}
	}
	var sink *archiveSink
	if cmdline, ok := strings.CutPrefix(target, "exec:"); ok {
		sink, err = execSink(ctx, s, cmdline)
	} else if target == "-" {
		sink = &archiveSink{w: s.out}
	} else {
		sink, err = fileSink(target, false)
	}
	if err != nil {
		return err
	}
	if err := pack.WriteArchive(ctx, sink, vma.None, 0, nil); err != nil {
		if werr := sink.abort(); werr != nil {
			err = fmt.Errorf("%w (%v)", err, werr)
		}
		return fmt.Errorf("creating vma archive failed: %w", err)
	}
	if err := sink.finish(); err != nil {
		return fmt.Errorf("creating vma archive failed: %w", err)
	}
	if stats != nil {
		stats.images()
	}
	return nil
}

// refuseArchive refuses a VMA archive given as a raw device. vma create
// would store its bytes as a disk's, and -d requires a format, so
// format=raw there is vma's syntax, not a choice to override detection
// (as convert -f raw is): the archive is surely meant to be unpacked.
func refuseArchive(format, path string) error {
	if format != "raw" {
		return nil // qcow2 refuses anything but qcow2 by itself
	}
	src, err := recipe.Identify(path)
	if err != nil || !src.Archive() {
		return nil // opening the device reports what is wrong with it
	}
	return fmt.Errorf("%s: %w", path, recipe.ErrArchive)
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
