package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/vmatool/vmatool/internal/pveconf"
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
does for a VM without disks. Holes and zero clusters are never read.

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
	vmid := fs.Int("vmid", 100, "VM id for a generated archive name and config")
	storage := fs.String("storage", "local-lvm", "storage named in generated drive and #qmdump#map lines")
	uuidFlag := fs.String("uuid", "", "archive uuid (default: random, or derived under SOURCE_DATE_EPOCH)")
	ctimeFlag := fs.Int64("ctime", -1, "archive creation time in seconds since the epoch (default: now, or SOURCE_DATE_EPOCH)")
	dataFileFlags := fs.StringArray("data-file", nil, "external data file of a qcow2 image, IMAGE=PATH (or PATH with one disk)")
	noBacking := fs.Bool("no-backing", false, "refuse a qcow2 image that has a backing file")
	force := fs.BoolP("force", "f", false, "overwrite an existing output")
	quiet := fs.BoolP("quiet", "q", false, "no progress display, no backing chain on standard error, and no output path on standard output")
	if err := parseFlags(s, fs, packHelp, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("-o OUT is required")
	}
	names, paths, err := parseDiskArgs(fs.Args())
	if err != nil {
		return err
	}
	extData, err := dataFiles(*dataFileFlags, paths)
	if err != nil {
		return err
	}

	var cfgs []vma.Config
	for _, p := range *configs {
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		cfgs = append(cfgs, vma.Config{Name: filepath.Base(p), Data: data})
	}
	disks := make([]*openedDisk, len(paths))
	defer closeDisks(disks)
	drives := make([]pveconf.Drive, len(paths))
	for i, p := range paths {
		o := diskOptions{dataFile: extData[p], backing: backingMode(*noBacking, true)}
		if !*quiet {
			o.chain = func(line string) { fmt.Fprintln(s.err, line) }
		}
		if disks[i], err = openDiskWith(p, o); err != nil {
			return err
		}
		key, dev, _ := pveconf.ParseDriveName(names[i])
		drives[i] = pveconf.Drive{Key: key, DevName: dev, Storage: *storage, Format: "raw", Size: disks[i].disk.Size()}
		names[i] = dev
	}
	cfgs, err = withMapLines(s, cfgs, drives, *vmid)
	if err != nil {
		return err
	}

	ctime, id, err := archiveIdentity(s, *uuidFlag, *ctimeFlag, fs.Changed("ctime"), cfgs, drives)
	if err != nil {
		return err
	}
	ps, err := newPackSpec(cfgs, names, disks, vma.WithUUID(id), vma.WithCtime(ctime))
	if err != nil {
		return err
	}

	dest, comp, err := packDestination(*out, *compress, *vmid, ctime)
	if err != nil {
		return err
	}
	var sink *archiveSink
	if dest == "-" {
		sink, err = newSink(s.out, comp, *level)
	} else {
		sink, err = fileSink(dest, *force, comp, *level)
	}
	if err != nil {
		return err
	}
	m := newMeter(s, *quiet, "pack", ps.total)
	err = ps.writeTo(ctx, sink, m)
	m.Finish()
	if err != nil {
		sink.abort()
		return err
	}
	if err := sink.finish(); err != nil {
		return err
	}
	if dest != "-" && !*quiet {
		fmt.Fprintln(s.out, dest)
	}
	return nil
}

// parseDiskArgs splits [NAME=]PATH arguments. A prefix before '=' counts as
// a name only if it is a drive name, so paths with '=' still work.
// Unnamed disks take the lowest free scsiN.
func parseDiskArgs(args []string) (names, paths []string, err error) {
	used := map[string]bool{}
	names = make([]string, len(args))
	paths = make([]string, len(args))
	for i, a := range args {
		paths[i] = a
		if k, p, ok := strings.Cut(a, "="); ok {
			key, _, perr := pveconf.ParseDriveName(k)
			if perr == nil {
				if used[key] {
					return nil, nil, usagef("disk name %s used twice", key)
				}
				names[i], paths[i], used[key] = key, p, true
			} else if _, serr := os.Stat(a); serr != nil && !strings.Contains(k, "/") {
				return nil, nil, usageError{perr.Error()} // a name, not part of a path
			}
		}
		if paths[i] == "" {
			return nil, nil, usagef("disk %q has an empty path", a)
		}
	}
	next := 0
	for i := range names {
		if names[i] != "" {
			continue
		}
		for used["scsi"+strconv.Itoa(next)] {
			next++
		}
		names[i] = "scsi" + strconv.Itoa(next)
		used[names[i]] = true
	}
	return names, paths, nil
}

// withMapLines makes sure qemu-server.conf exists and maps every disk.
func withMapLines(s *streams, cfgs []vma.Config, drives []pveconf.Drive, vmid int) ([]vma.Config, error) {
	for i, c := range cfgs {
		if c.Name != pveconf.ConfigName {
			continue
		}
		data, unattached := pveconf.EnsureMapLines(c.Data, drives)
		for _, k := range unattached {
			fmt.Fprintf(s.err, "vmatool pack: warning: %s has no %s: line; qmrestore will restore the disk but not attach it\n", pveconf.ConfigName, k)
		}
		cfgs[i].Data = data
		return cfgs, nil
	}
	return append([]vma.Config{{Name: pveconf.ConfigName, Data: pveconf.Minimal(vmid, drives)}}, cfgs...), nil
}

// uuidNamespace scopes uuids derived from archive inputs.
var uuidNamespace = uuid.MustParse("8f1f6c1e-3b0e-4c55-9a51-6f1b0e7e2a10")

// archiveIdentity picks ctime and uuid: flags first, then
// SOURCE_DATE_EPOCH (uuid derived from the inputs), then now and random.
func archiveIdentity(s *streams, uuidFlag string, ctimeFlag int64, ctimeSet bool, cfgs []vma.Config, drives []pveconf.Drive) (time.Time, uuid.UUID, error) {
	var id uuid.UUID
	if uuidFlag != "" {
		var err error
		if id, err = uuid.Parse(uuidFlag); err != nil {
			return time.Time{}, id, usagef("--uuid %q: %v", uuidFlag, err)
		}
	}
	epoch, haveEpoch := int64(0), false
	if v := s.getenv("SOURCE_DATE_EPOCH"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return time.Time{}, id, usagef("SOURCE_DATE_EPOCH=%q is not a number of seconds", v)
		}
		epoch, haveEpoch = n, true
	}
	var ctime time.Time
	switch {
	case ctimeSet:
		if ctimeFlag < 0 {
			return time.Time{}, id, usagef("--ctime must not be negative")
		}
		ctime = time.Unix(ctimeFlag, 0)
	case haveEpoch:
		ctime = time.Unix(epoch, 0)
	default:
		ctime = s.now().Truncate(time.Second)
	}
	if uuidFlag == "" && haveEpoch && !ctimeSet {
		id = derivedUUID(ctime, cfgs, drives)
	} else if uuidFlag == "" {
		id = uuid.New()
	}
	return ctime, id, nil
}

// derivedUUID hashes what goes into the header. Disk contents are not read
// for it: the header is written before the data.
func derivedUUID(ctime time.Time, cfgs []vma.Config, drives []pveconf.Drive) uuid.UUID {
	h := sha256.New()
	field := func(b []byte) {
		binary.Write(h, binary.BigEndian, uint64(len(b)))
		h.Write(b)
	}
	binary.Write(h, binary.BigEndian, ctime.Unix())
	for _, c := range cfgs {
		field([]byte(c.Name))
		field(c.Data)
	}
	for _, d := range drives {
		field([]byte(d.DevName))
		binary.Write(h, binary.BigEndian, d.Size)
	}
	return uuid.NewSHA1(uuidNamespace, h.Sum(nil))
}

// vzdumpName is the file name vzdump gives a backup taken at t (local
// time), which Proxmox's storage layer recognises as a VM backup.
func vzdumpName(vmid int, t time.Time, comp vma.Compression) string {
	return fmt.Sprintf("vzdump-qemu-%d-%s.vma%s", vmid, t.Local().Format("2006_01_02-15_04_05"), comp.Ext())
}

// packDestination resolves OUT to a path (or "-") and a compression.
func packDestination(out, compress string, vmid int, ctime time.Time) (string, vma.Compression, error) {
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
		return filepath.Join(out, vzdumpName(vmid, ctime, comp)), comp, nil
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
