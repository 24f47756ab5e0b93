package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/vmatool/vmatool/internal/pveconf"
	"github.com/vmatool/vmatool/internal/recipe"
	"github.com/vmatool/vmatool/vma"
)

func init() {
	commands = append(commands, command{name: "pack", summary: "pack raw or qcow2 disk images into a VMA archive", run: runPack})
}

const packHelp = `Usage: vmatool pack -o OUT [-c CONFIG]... [options] [DISK...]

Packs disk images (raw or qcow2, detected by content, in any mix) into a
Proxmox VE backup archive that qmrestore and the Proxmox API restore.
DISK is [NAME=]PATH; NAME is a drive key like scsi0, virtio0 or efidisk0, with
or without the drive- prefix. Unnamed disks become scsi0, scsi1, ... as
vzdump names them. No DISK at all makes a config-only archive, as vzdump
does for a VM without disks. Holes and zero clusters are never read. A
VMA archive given as a DISK is refused: vmatool convert turns one into
images.

Configs are stored under their base names. Without a qemu-server.conf a
minimal one is generated; either way it gets a #qmdump#map line for every
disk, which qmrestore needs to place it.

A qcow2 image's backing chain is followed as qemu follows it (a relative
name is relative to the directory of the image that names it, and may lead
out of it), but only through regular files: never a FIFO, device, socket or
directory. The chain is shown on standard error before anything is read,
unless --quiet. --no-backing refuses an image that has a backing file: use
it for images from untrusted sources, whose header can name any file you
may read.

OUT ending in .vma.zst or .vma.gz selects compression (--compress
overrides); "-" writes to standard output (uncompressed unless --compress
says otherwise); an existing directory gets a vzdump-style name,
vzdump-qemu-<vmid>-<YYYY_MM_DD-HH_MM_SS>.vma.zst. The archive is written
under a temporary name and renamed into place when complete.

With SOURCE_DATE_EPOCH set and no --uuid/--ctime, ctime comes from it and
the uuid is derived from the configs, disk names and sizes, so the same
inputs give the same archive byte for byte.

OPTIONS:

EXAMPLES:
  vmatool pack -o vzdump-qemu-100-2024_01_01-00_00_00.vma.zst result/nixos.qcow2
  vmatool pack -o /var/lib/vz/dump/ --vmid 120 -c qemu-server.conf scsi0=root.raw efidisk0=vars.raw
  vmatool pack -o - --compress zstd disk.raw | ssh pve 'cat > /var/lib/vz/dump/vzdump-qemu-100-x.vma.zst'

EXIT STATUS:
  0 ok, 1 error (no output left behind), 2 usage error, 130 interrupted.
`

func runPack(ctx context.Context, s *streams, args []string) error {
	fs := newFlags("pack")
	out := fs.StringP("output", "o", "", "output archive, directory, or - for standard output (required)")
	configs := fs.StringArrayP("config", "c", nil, "config file to store (repeatable); qemu-server.conf gets map lines added")
	compress := fs.String("compress", "", "zstd, gzip or none (default: from the OUT name)")
	level := fs.Int("level", 0, "compression level, numbered as zstd and gzip do (default: the fastest zstd, output about 2% larger than zstd -3; gzip 6)")
	vmid := fs.Int("vmid", recipe.DefaultVMID, "VM id for a generated archive name and config")
	storage := fs.String("storage", recipe.DefaultStorage, "storage named in generated drive and #qmdump#map lines")
	uuidFlag := fs.String("uuid", "", "archive uuid (default: random, or derived under SOURCE_DATE_EPOCH)")
	ctimeFlag := fs.Int64("ctime", -1, "archive creation time in seconds since the epoch (default: now, or SOURCE_DATE_EPOCH)")
	dataFileFlags := fs.StringArray("data-file", nil, "external data file of a qcow2 image, IMAGE=PATH (or PATH with one disk)")
	noBacking := fs.Bool("no-backing", false, "refuse a qcow2 image that has a backing file")
	force := fs.BoolP("force", "f", false, "overwrite an existing output")
	quiet := fs.BoolP("quiet", "q", false, "no progress display, no backing chain on standard error, and no output path on standard output")
	addProgressFlag(fs, s)
	if err := parseFlags(s, fs, packHelp, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("-o OUT is required")
	}
	disks, err := recipe.ParseDisks(fs.Args())
	if err != nil {
		return recipeError(err)
	}
	if err := dataFiles(*dataFileFlags, disks); err != nil {
		return err
	}
	cfgs, err := recipe.ReadConfigs(*configs...)
	if err != nil {
		return err
	}
	opts := []recipe.Option{recipe.WithBacking(recipe.BackingMode(*noBacking, true)), recipe.WithNow(s.now())}
	if !*quiet {
		opts = append(opts, recipe.WithChain(chainPrinter(s)))
	}
	idOpts, err := identityOptions(s, *uuidFlag, *ctimeFlag, fs.Changed("ctime"), true)
	if err != nil {
		return err
	}
	pack, err := recipe.Open(recipe.Spec{Configs: cfgs, Disks: disks, VMID: *vmid, Storage: *storage}, append(opts, idOpts...)...)
	if err != nil {
		return recipeError(err)
	}
	defer pack.Close()
	for _, k := range pack.Unattached {
		fmt.Fprintf(s.err, "vmatool pack: warning: %s has no %s: line; qmrestore will restore the disk but not attach it\n", pveconf.ConfigName, k)
	}

	dest, comp, err := packDestination(*out, *compress, pack)
	if err != nil {
		return err
	}
	var sink *archiveSink
	if dest == "-" {
		sink = &archiveSink{w: s.out}
	} else if sink, err = fileSink(dest, *force); err != nil {
		return err
	}
	m := newMeter(s, *quiet, "pack", pack.Size)
	written := &countingWriter{w: sink}
	err = pack.WriteArchive(ctx, written, comp, *level, m)
	if err != nil {
		m.Finish()
		sink.abort()
		return err
	}
	if err := sink.finish(); err != nil {
		m.Finish()
		return err
	}
	m.Done(written.n.Load(), dest)
	if dest != "-" && !*quiet {
		fmt.Fprintln(s.out, dest)
	}
	return nil
}

// identityOptions maps --uuid, --ctime and, when epoch is true,
// SOURCE_DATE_EPOCH to the recipe's identity options.
func identityOptions(s *streams, uuidFlag string, ctimeFlag int64, ctimeSet, epoch bool) ([]recipe.Option, error) {
	var opts []recipe.Option
	if uuidFlag != "" {
		id, err := uuid.Parse(uuidFlag)
		if err != nil {
			return nil, usagef("--uuid %q: %v", uuidFlag, err)
		}
		opts = append(opts, recipe.WithUUID(id))
	}
	if ctimeSet {
		if ctimeFlag < 0 {
			return nil, usagef("--ctime must not be negative")
		}
		opts = append(opts, recipe.WithCtime(time.Unix(ctimeFlag, 0)))
	}
	if v := s.getenv("SOURCE_DATE_EPOCH"); epoch && v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, usagef("SOURCE_DATE_EPOCH=%q is not a number of seconds", v)
		}
		opts = append(opts, recipe.WithSourceDateEpoch(time.Unix(n, 0)))
	}
	return opts, nil
}

// packDestination resolves OUT to a path (or "-") and a compression.
func packDestination(out, compress string, pack *recipe.Pack) (string, vma.Compression, error) {
	var comp vma.Compression
	switch compress {
	case "":
	case "zstd", "gzip", "none":
		comp = vma.Compression(compress)
	default:
		return "", "", usagef("--compress %q: want zstd, gzip or none", compress)
	}
	if out == "-" {
		if comp == "" {
			comp = vma.None
		}
		return out, comp, nil
	}
	if st, err := os.Stat(out); err == nil && st.IsDir() {
		if comp == "" {
			comp = vma.Zstd
		}
		return filepath.Join(out, pack.Name(comp)), comp, nil
	}
	if comp == "" {
		switch {
		case strings.HasSuffix(out, ".zst"):
			comp = vma.Zstd
		case strings.HasSuffix(out, ".gz"):
			comp = vma.Gzip
		case strings.HasSuffix(out, ".lzo"), strings.HasSuffix(out, ".bz2"):
			return "", "", usagef("%s: vmatool writes zstd and gzip; lzop and bzip2 archives can be read but not written", out)
		default:
			comp = vma.None
		}
	}
	return out, comp, nil
}
