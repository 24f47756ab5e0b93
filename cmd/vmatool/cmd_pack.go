package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/spf13/pflag"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/vmatool/vmatool/internal/pveconf"
	"github.com/vmatool/vmatool/internal/recipe"
	"github.com/vmatool/vmatool/vma"
)

const packHelp = `Usage: vmatool pack -o OUT [-c CONFIG]... [options] DISK...
       vmatool pack -o OUT --config-only [-c CONFIG]... [options]

Packs disk images (raw or qcow2, detected by content, in any mix) into a
Proxmox VE backup archive that qmrestore and the Proxmox API restore.
DISK is [NAME=]PATH; NAME is a drive key like scsi0, virtio0 or efidisk0, with
or without the drive- prefix. Unnamed disks become scsi0, scsi1, ... as
vzdump names them. --config-only, with no DISK, makes an archive of
configs alone, as vzdump does for a VM without disks; without it, no DISK
is a usage error. Holes and zero clusters are never read, so a DISK is a
file, never "-" (standard input cannot be read at random offsets). A VMA
archive given as a DISK is refused: vmatool convert turns one into images.
The archive is written only to -o: "pack in.qcow2 out.vma.zst", with
out.vma.zst not there, is refused with the command line that was meant.

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

OUT ending in .vma.zst or .vma.gz selects compression; --compress must
agree with a name that ends in .vma, .zst, .gz, .lzo or .bz2 (zstd in a
.gz file would restore as garbage), and picks the compression of a name
that says none. "-" writes to standard output (uncompressed unless
--compress says otherwise), but never to a terminal: redirect it. An
existing folder gets a vzdump-style name,
vzdump-qemu-<vmid>-<YYYY_MM_DD-HH_MM_SS>.vma.zst; OUT ending in "/" must
be an existing folder. The folder OUT goes into must exist: pack creates
none. The archive is written under a temporary name and renamed into
place when complete. A name qmrestore will not restore (it takes only
vzdump-qemu-<VMID>-<anything>.vma[.zst|.gz|.lzo]) gets a warning on
standard error, unless --quiet.

With SOURCE_DATE_EPOCH set and no --uuid/--ctime, ctime comes from it and
the uuid is derived from the configs, disk names and sizes, so the same
inputs give the same archive byte for byte.

OPTIONS:

EXAMPLES:
  vmatool pack -o vzdump-qemu-100-2024_01_01-00_00_00.vma.zst result/nixos.qcow2
  vmatool pack -o /var/lib/vz/dump/ --vmid 120 -c qemu-server.conf scsi0=root.raw efidisk0=vars.raw
  vmatool pack -o - --compress zstd disk.raw | ssh pve 'cat > /var/lib/vz/dump/vzdump-qemu-100-x.vma.zst'
  vmatool pack -o out/ --config-only -c qemu-server.conf

EXIT STATUS:
  0 ok, 1 error (no output left behind), 2 usage error (also no DISK without
  --config-only, --compress against OUT's name, and -o - on a terminal),
  130 interrupted.
`

// packOptions are pack's flags and arguments (the disks).
type packOptions struct {
	cmdLine
	output     string
	configs    []string
	compress   string
	level      int
	vmid       int
	storage    string
	uuid       string
	ctime      int64 // only if given: -1 is refused, not "now"
	dataFiles  []string
	noBacking  bool
	force      bool
	configOnly bool
	quiet      bool
	progress   bool
}

func (o *packOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&o.output, "output", "o", "", "output archive, existing folder (a vzdump name is made), or - for standard output (required)")
	fs.StringArrayVarP(&o.configs, "config", "c", nil, "config file to store (repeatable); qemu-server.conf gets map lines added")
	fs.StringVar(&o.compress, "compress", "", "zstd, gzip or none; must agree with OUT's name (default: from the OUT name)")
	fs.IntVar(&o.level, "level", 0, "compression level, numbered as zstd and gzip do (default: the fastest zstd, output about 2% larger than zstd -3; gzip 6)")
	fs.IntVar(&o.vmid, "vmid", recipe.DefaultVMID, "VM id for a generated archive name and config")
	fs.StringVar(&o.storage, "storage", recipe.DefaultStorage, "storage named in generated drive and #qmdump#map lines")
	fs.StringVar(&o.uuid, "uuid", "", "archive uuid (default: random, or derived under SOURCE_DATE_EPOCH)")
	fs.Int64Var(&o.ctime, "ctime", -1, "archive creation time in seconds since the epoch (default: now, or SOURCE_DATE_EPOCH)")
	fs.StringArrayVar(&o.dataFiles, "data-file", nil, "external data file of a qcow2 image, IMAGE=PATH (or PATH with one disk)")
	fs.BoolVar(&o.noBacking, "no-backing", false, "refuse a qcow2 image that has a backing file")
	fs.BoolVarP(&o.force, "force", "f", false, "overwrite an existing output")
	fs.BoolVar(&o.configOnly, "config-only", false, "make an archive of configs alone, without disks (as vzdump does for a VM without disks)")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "no progress display, no backing chain or warning about the name on standard error, and no output path on standard output")
	addProgressFlag(fs, &o.progress)
}

// runPack packs the disks into the archive -o names.
func runPack(ctx context.Context, s *streams, o *packOptions) error {
	if err := checkPackArgs(s, o.output, o.args, o.configs, o.configOnly); err != nil {
		return err
	}
	s = s.withProgress(o.progress)
	disks, err := recipe.ParseDisks(o.args)
	if err != nil {
		return recipeError(err)
	}
	if err := dataFiles(o.dataFiles, disks); err != nil {
		return err
	}
	cfgs, err := recipe.ReadConfigs(o.configs...)
	if err != nil {
		return err
	}
	opts := []recipe.Option{recipe.WithBacking(recipe.BackingMode(o.noBacking, true)), recipe.WithNow(s.now())}
	if !o.quiet {
		opts = append(opts, recipe.WithChain(chainPrinter(s)))
	}
	idOpts, err := identityOptions(s, o.uuid, o.ctime, o.isGiven("ctime"), true)
	if err != nil {
		return err
	}
	pack, err := recipe.Open(recipe.Spec{Configs: cfgs, Disks: disks, VMID: o.vmid, Storage: o.storage}, append(opts, idOpts...)...)
	if err != nil {
		return recipeError(err)
	}
	defer pack.Close()
	for _, k := range pack.Unattached {
		fmt.Fprintf(s.err, "vmatool pack: warning: %s has no %s: line; qmrestore will restore the disk but not attach it\n", pveconf.ConfigName, k)
	}

	dest, comp, err := packDestination(o.output, o.compress, pack)
	if err != nil {
		return err
	}
	var sink *archiveSink
	if dest == "-" {
		sink = &archiveSink{w: s.out}
	} else if sink, err = fileSink(dest, o.force); err != nil {
		return err
	}
	m := newMeter(s, o.quiet, "pack", pack.Size)
	written := &countingWriter{w: sink}
	err = pack.WriteArchive(ctx, written, comp, o.level, m)
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
	if dest != "-" && !o.quiet {
		fmt.Fprintln(s.out, dest)
		if w := restoreNameWarning(dest); w != "" {
			fmt.Fprintf(s.err, "vmatool pack: warning: %s\n", w)
		}
	}
	return nil
}

// checkPackArgs refuses, before anything is opened, the command lines
// that would otherwise do something the user did not mean: no -o (and,
// with qemu-img's "SRC DST" habit, the archive name as the last disk), a disk
// on standard input, no disks without --config-only, or an archive
// written to a terminal, or a config from standard input, which has no
// name to store it under.
func checkPackArgs(s *streams, out string, disks, configs []string, configOnly bool) error {
	if n := len(disks); n > 0 && out == "" {
		_, last, named := strings.Cut(disks[n-1], "=")
		if !named {
			last = disks[n-1]
		}
		if _, err := os.Stat(last); looksLikeArchive(last) && errors.Is(err, fs.ErrNotExist) {
			return usagef("%s does not exist and looks like the archive to write: pack writes its archive to -o OUT (vmatool pack -o %s DISK...)", last, last)
		}
	}
	if out == "" {
		return usagef("-o OUT is required")
	}
	for _, d := range disks {
		if d == "-" || strings.HasSuffix(d, "=-") {
			return usagef("a disk cannot be read from standard input: pack reads images at random offsets; write it to a file first")
		}
	}
	if slices.Contains(configs, "-") {
		return usagef("-c -: a config is stored under its file name, and standard input has none; write it to a file (such as qemu-server.conf) first")
	}
	switch {
	case len(disks) == 0 && !configOnly:
		return usagef("no DISK given: add the disk images to pack, or --config-only for an archive of configs alone")
	case len(disks) > 0 && configOnly:
		return usagef("--config-only makes an archive without disks, but disks are given: leave out one or the other")
	}
	if out == "-" && s.outIsTTY {
		return errTerminal
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
	if namesFolder(out) {
		if err := checkFolderArg(out); err != nil {
			return "", "", err
		}
	}
	if st, err := os.Stat(out); err == nil && st.IsDir() {
		if comp == "" {
			comp = vma.Zstd
		}
		return filepath.Join(out, pack.Name(comp)), comp, nil
	}
	if err := checkCompressionName("--compress", comp, out); comp != "" && err != nil {
		return "", "", err
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
