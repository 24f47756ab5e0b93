package main

import (
	"context"
)

func init() {
	commands = append(commands, command{name: "unpack", summary: "write an archive's configs and disks into a directory", run: runUnpack})
}

const unpackHelp = `Usage: vmatool unpack [-d NAMES] [--force] [--quiet] ARCHIVE DIR

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
"-" for standard input.

OPTIONS:

EXAMPLES:
  vmatool unpack vzdump-qemu-100-2024_01_01-00_00_00.vma.zst out/
  vmatool unpack -d drive-scsi0 backup.vma out/
  ssh pve 'cat /var/lib/vz/dump/vzdump-qemu-100.vma.zst' | vmatool unpack - out/

EXIT STATUS:
  0 ok, 1 malformed or incomplete archive or an I/O error (nothing written),
  2 usage error, 130 interrupted (nothing written, or, if the signal came
  after the last file was in place, everything).
`

func runUnpack(ctx context.Context, s *streams, args []string) error {
	fs := newFlags("unpack")
	devices := fs.StringSliceP("devices", "d", nil, "only these devices (comma-separated or repeated); configs are always written")
	force := fs.BoolP("force", "f", false, "overwrite existing files")
	quiet := fs.BoolP("quiet", "q", false, "no progress display")
	window := addMaxWindowFlag(fs)
	if err := parseFlags(s, fs, unpackHelp, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("want ARCHIVE and DIR, got %d arguments", fs.NArg())
	}
	a, err := openArchive(s, fs.Arg(0), *quiet, "unpack", window.option())
	if err != nil {
		return err
	}
	defer a.Close()
	return unpackArchive(ctx, a, unpackJob{dir: fs.Arg(1), devices: *devices, force: *force, warn: s.err})
}
