package main

import (
	"context"
	"fmt"
	"github.com/spf13/pflag"
	"strings"

	"github.com/vmatool/vmatool/vma"
)

const extractHelp = `Usage: vmatool extract <file> [-v] [-d <drive-list>] <targetdir>
       vmatool extract <file> [-v] [-d <drive-list>] -r <fifo> <tmpdir>

The arguments and output of Proxmox's "vma extract", so scripts written for
it work unchanged. <file> may be compressed or "-" for standard input.

Without -r, <targetdir> must not exist; it is created. Configs are written
to <targetdir>/<name>, disks to <targetdir>/disk-<devname>.raw, the VM
state to <targetdir>/vmstate.bin, and a "DEVINFO <path> <size>" line is
printed per disk. Unlike Proxmox's tool, everything is written into a
temporary .vmatool-* folder beside <targetdir> (the paths DEVINFO prints),
which becomes <targetdir> in one rename once the whole archive has been
read: a failed or interrupted extract leaves nothing behind.

-d limits the disks to those named (comma-separated; the last -d counts).
Names the archive lacks are ignored, as Proxmox ignores them; a warning
says so.

With -r, the restore protocol of qmrestore ("vma extract -v -r FIFO
ARCHIVE TMPDIR"): the configs are written to <tmpdir> (which must not
exist), the archive's listing is printed (CFG:, DEV:, VMSTATE: and last
CTIME: lines, as "vmatool list" prints them), and then one line per disk
is read from <fifo> (a FIFO, a file, or "-" for standard input when
<file> is not), up to a line "done", an empty line or the end:

  [format=<fmt>:][throttling.bps=<bytes/s>:][throttling.group=<name>:][cache=<mode>:]<0|1>:<devname>=<path>
  skip=<devname>

The options come in any order. <0|1> says whether zero blocks must be
written (1: the target may hold old data) or may be skipped (0: it reads
as zeros). <path> is an existing regular file or block device, of the
disk's size or up to 4 MiB larger; <fmt> must be raw (or left out). Other
targets, such as QEMU's rbd:, iscsi:// or nbd: block drivers, or other
formats, are refused before anything is read. Writes to targets that share
a throttling.group share its limit. cache= takes QEMU's modes; it changes
nothing, as every target is synced at the end. Every disk not skipped (or
left out by -d) needs a line. The VM state goes to <tmpdir>/vmstate.bin.
The targets are synced before vmatool exits; if the restore fails, what it
made in <tmpdir> is removed, and the targets hold partial data.

With -v, progress lines "progress N% (read BYTES bytes, duration S sec)"
whenever the percentage changes and a summary follow, on standard
output, with Proxmox's figures: BYTES counts whole 64 KiB clusters of every
disk, extracted or not, and N is them against the disks' whole clusters,
so it passes 100% on disks that are not 64 KiB-aligned.

OPTIONS:

EXAMPLES:
  vmatool extract backup.vma /tmp/restore
  vmatool extract backup.vma -v -d drive-scsi0,drive-efidisk0 /tmp/restore
  zstd -dc backup.vma.zst | vmatool extract -v -r /var/tmp/map.fifo - /var/tmp/restore

EXIT STATUS:
  0 ok, 1 error (nothing written; with -r, the targets may hold partial
  data), 2 usage error, 130 interrupted.
`

// extractOptions are extract's flags and arguments (<file> and
// <targetdir> or <tmpdir>).
type extractOptions struct {
	cmdLine
	verbose bool
	drives  string // comma-separated; only if given, as -d "" picks none
	readMap string // only if given
	window  maxWindow
}

func (o *extractOptions) addFlags(fs *pflag.FlagSet) {
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "print progress lines and a summary, as Proxmox does")
	fs.StringVarP(&o.drives, "drives", "d", "", "comma-separated device names to extract (the last -d counts)")
	fs.StringVarP(&o.readMap, "read-map", "r", "", "read where each disk goes from this FIFO or file (- for standard input), as qmrestore drives vma")
	addMaxWindowFlag(fs, &o.window)
}

// runExtract extracts into a new folder, or with -r restores onto the
// targets the map names, as Proxmox's vma extract does.
func runExtract(ctx context.Context, s *streams, o *extractOptions) error {
	if len(o.args) != 2 {
		return usagef("want <file> and <targetdir>, got %d arguments", len(o.args))
	}
	if o.isGiven("read-map") && o.readMap == "-" && o.args[0] == "-" {
		return usagef("-r - and <file> - both want standard input: give one of them as a file or FIFO")
	}
	a, err := openArchive(s, o.args[0], true, "", o.window.option())
	if err != nil {
		return err
	}
	defer a.Close()
	var drives []string
	if o.isGiven("drives") {
		drives = strings.Split(o.drives, ",")
		warnMissingDrives(s, a.reader.Header(), drives)
	}
	var stats *readStats
	if o.verbose {
		stats = newReadStats(s.out, s.now, a.reader.Header(), false)
	}
	if o.isGiven("read-map") {
		return restoreMapped(ctx, s, a, mappedRestore{dir: o.args[1], mapPath: o.readMap, drives: drives, stats: stats})
	}
	job := unpackJob{dir: o.args[1], mustBeNew: true, anyDevices: true, devinfo: s.out, stats: stats, warn: s.err}
	job.devices = drives
	return unpackArchive(ctx, a, &job)
}

// warnMissingDrives says which names of -d the archive lacks. Proxmox's
// extract skips every disk not named and ignores names it does not know,
// so a typo extracts nothing; the warning is vmatool's own.
func warnMissingDrives(s *streams, h *vma.Header, drives []string) {
	var have []string
	for _, d := range h.Devices {
		if !d.IsVMState() {
			have = append(have, d.Name)
		}
	}
	for _, n := range drives {
		if _, ok := h.Device(n); !ok {
			fmt.Fprintf(s.err, "vmatool extract: warning: -d %s: the archive has no such disk (it has: %s)\n", n, strings.Join(have, ", "))
		}
	}
}
