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

// unpackFlags defines unpack's flags on fs and returns what runs it once
// they are parsed.
func unpackFlags(fs *pflag.FlagSet, s *streams) runner {
	devices := fs.StringSliceP("devices", "d", nil, "only these devices, with or without drive- (comma-separated or repeated); configs are always written")
	force := fs.BoolP("force", "f", false, "overwrite existing files")
	quiet := fs.BoolP("quiet", "q", false, "no progress display")
	addProgressFlag(fs, s)
	partial := fs.Bool("partial", false, "salvage a damaged or truncated archive: write what is intact, list what is missing (exit status 3)")
	asJSON := fs.Bool("json", false, "print the outcome as JSON: output folder, complete, missing ranges, damage")
	window := addMaxWindowFlag(fs)
	return func(ctx context.Context) error {
		if fs.NArg() != 2 {
			return usagef("want ARCHIVE and DIR, got %d arguments", fs.NArg())
		}
		if fs.Arg(1) == "-" {
			return usagef("unpack writes files into a folder, not to standard output; to stream a disk, use vmatool convert -d DEV -O raw %s - (or ./- for a folder named -)", fs.Arg(0))
		}
		var ropts []vma.ReaderOption
		if *partial {
			ropts = append(ropts, vma.WithSalvage())
		}
		a, err := openArchiveWith(s, fs.Arg(0), *quiet || *asJSON, "unpack", ropts, window.option())
		if err != nil {
			return err
		}
		defer a.Close()
		job := &unpackJob{dir: fs.Arg(1), devices: deviceNames(a.reader.Header(), *devices), force: *force, warn: s.err, partial: *partial}
		if err := unpackArchive(ctx, a, job); err != nil {
			if !*partial {
				err = damageHint(err, "unpack")
			}
			return err
		}
		sr := job.salvage
		if *asJSON {
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
}

// unpackJSONDoc is unpack --json.
type unpackJSONDoc struct {
	Output   string `json:"output"`
	Complete bool   `json:"complete"`
	salvageResult
}
