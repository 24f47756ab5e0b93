package main

import (
	"context"
	"strings"
)

func init() {
	commands = append(commands, command{name: "extract", summary: "Proxmox-compatible form: vmatool extract <file> [-v] [-d drive-list] <targetdir>", run: runExtract})
}

const extractHelp = `Usage: vmatool extract <file> [-v] [-d <drive-list>] <targetdir>

The arguments of Proxmox's "vma extract", so scripts written for it work
unchanged. <targetdir> must not exist; it is created. Configs are written to
<targetdir>/<name>, disks to <targetdir>/disk-<devname>.raw. <file> may be
compressed or "-" for standard input. Unlike Proxmox's tool, everything is
written into a temporary .vmatool-* folder beside <targetdir> (the paths
DEVINFO prints), which becomes <targetdir> in one rename once the whole
archive has been read: a failed or interrupted extract leaves nothing
behind.

OPTIONS:

EXAMPLES:
  vmatool extract backup.vma /tmp/restore
  vmatool extract backup.vma -v -d drive-scsi0,drive-efidisk0 /tmp/restore

EXIT STATUS:
  0 ok, 1 error (nothing written), 2 usage error, 130 interrupted.
`

func runExtract(ctx context.Context, s *streams, args []string) error {
	fs := newFlags("extract")
	verbose := fs.BoolP("verbose", "v", false, "print DEVINFO lines and a summary, as Proxmox does")
	driveList := fs.StringP("drives", "d", "", "comma-separated device names to extract (the last -d counts)")
	window := addMaxWindowFlag(fs)
	if err := parseFlags(s, fs, extractHelp, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("want <file> and <targetdir>, got %d arguments", fs.NArg())
	}
	a, err := openArchive(s, fs.Arg(0), true, "", window.option())
	if err != nil {
		return err
	}
	defer a.Close()
	job := unpackJob{dir: fs.Arg(1), mustBeNew: true, warn: s.err}
	if *driveList != "" {
		job.devices = strings.Split(*driveList, ",")
	}
	if *verbose {
		job.verbose = s.out
	}
	return unpackArchive(ctx, a, &job)
}
