package main

import (
	"context"
	"github.com/spf13/pflag"

	"github.com/vmatool/vmatool/vma"
)

const unpackHelp = `Usage: vmatool unpack [-d NAMES] [--force] [--quiet] [--partial] [--json] ARCHIVE DIR

Writes each config of the archive to DIR/<name> and each disk to
DIR/disk-<devname>.raw as a sparse raw image (zero blocks become holes).
DIR is created if needed, with its parents. Everything is written into a
temporary .vmatool-* folder (beside a new DIR, inside an existing one) and
moved into place only when the whole archive has been read and found
complete and valid; on any error or interrupt DIR is left as it was, and
folders made for it are removed. Existing files are not overwritten
without --force; with it, they are replaced by the new set all together or
not at all, and a folder is never replaced. Names from the archive can
never write outside DIR.

ARCHIVE may be compressed (zstd, gzip, lzop, bzip2: detected by content) or
"-" for standard input. DIR cannot be "-": unpack writes files, and
"vmatool convert -d DEV -O raw ARCHIVE -" streams a disk to standard
output (./- is a folder named -). -d takes device names with or without
the drive- prefix (scsi0 or drive-scsi0).

--partial salvages a damaged or truncated archive: every cluster that
arrived intact is written, the rest is left as holes (zeros), and each
missing range (device, offset, length) is listed on standard error; the
outputs are then put in place although incomplete. A damaged extent (bad
checksum, magic or uuid) is skipped and reading goes on at the next intact
one. The header must be intact: without it nothing can be placed. --json
prints the outcome, missing ranges and damage included, on standard
output.

OPTIONS:

EXAMPLES:
  vmatool unpack vzdump-qemu-100-2024_01_01-00_00_00.vma.zst out/
  vmatool unpack -d scsi0 backup.vma out/
  ssh pve 'cat /var/lib/vz/dump/vzdump-qemu-100.vma.zst' | vmatool unpack - out/
  vmatool unpack --partial damaged.vma.zst out/

EXIT STATUS:
  0 ok, 1 malformed or incomplete archive or an I/O error (nothing written),
  2 usage error,
` + partialHelp + `  130 interrupted (nothing written, or, if the signal came after the last
  file was in place, everything).
`

// unpackOptions are unpack's flags and arguments (ARCHIVE and DIR).
type unpackOptions struct {
	cmdLine
	devices  []string
	force    bool
	quiet    bool
	progress bool
	partial  bool
	asJSON   bool
	window   maxWindow
}

func (o *unpackOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringSliceVarP(&o.devices, "devices", "d", nil, "only these devices, with or without drive- (comma-separated or repeated); configs are always written")
	fs.BoolVarP(&o.force, "force", "f", false, "overwrite existing files")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "no progress display")
	addProgressFlag(fs, &o.progress)
	fs.BoolVar(&o.partial, "partial", false, "salvage a damaged or truncated archive: write what is intact, list what is missing (exit status 3)")
	fs.BoolVar(&o.asJSON, "json", false, "print the outcome as JSON: output folder, complete, missing ranges, damage")
	addMaxWindowFlag(fs, &o.window)
}

// runUnpack writes the archive's configs and disks into DIR.
func runUnpack(ctx context.Context, s *streams, o *unpackOptions) error {
	if len(o.args) != 2 {
		return usagef("want ARCHIVE and DIR, got %d arguments", len(o.args))
	}
	src, dir := o.args[0], o.args[1]
	if dir == "-" {
		return usagef("unpack writes files into a folder, not to standard output; to stream a disk, use vmatool convert -d DEV -O raw %s - (or ./- for a folder named -)", src)
	}
	s = s.withProgress(o.progress)
	var ropts []vma.ReaderOption
	if o.partial {
		ropts = append(ropts, vma.WithSalvage())
	}
	a, err := openArchiveWith(s, src, o.quiet || o.asJSON, "unpack", ropts, o.window.option())
	if err != nil {
		return err
	}
	defer a.Close()
	job := &unpackJob{dir: dir, devices: deviceNames(a.reader.Header(), o.devices), force: o.force, warn: s.err, partial: o.partial}
	if err := unpackArchive(ctx, a, job); err != nil {
		if !o.partial {
			err = damageHint(err, "unpack")
		}
		return err
	}
	sr := job.salvage
	if o.asJSON {
		doc := unpackJSONDoc{Output: job.dir, Complete: sr == nil || sr.complete()}
		if sr != nil {
			doc.salvageResult = *sr
		} else {
			doc.Missing, doc.Damage = []missingJSON{}, []damageJSON{}
		}
		if err := writeJSON(s.out, doc); err != nil {
			return err
		}
	}
	if sr != nil && !sr.complete() {
		a.meter.Finish() // end the progress line before the report
		sr.report(s.err, "unpack", a, job.dir)
		return errPartial
	}
	a.meter.Done(job.diskBytes, job.dir)
	return nil
}

// unpackJSONDoc is unpack --json.
type unpackJSONDoc struct {
	Output   string `json:"output"`
	Complete bool   `json:"complete"`
	salvageResult
}
