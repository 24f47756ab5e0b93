package main

import (
	"context"
	"errors"

	"github.com/vmatool/vmatool/vma"
)

func init() {
	commands = append(commands, command{name: "verify", summary: "check that an archive is complete and valid", run: runVerify})
}

const verifyHelp = `Usage: vmatool verify [-v | --json] [--quiet] ARCHIVE

Reads the whole archive and checks everything Proxmox's "vma verify" checks
(header and extent checksums, uuids, block counts, duplicated clusters,
blocks past a device's end), plus that every cluster of every device is
present: Proxmox's verify passes an archive cut off at an extent boundary,
this one does not. It also refuses what unpack would refuse: config and
device names that are not plain file names of at most 255 bytes or that
would give two outputs one name, VM state past its size, and unused extent
slots that claim data. An archive verifies exactly when unpack can write
it. VMA has no checksum over disk data, so data blocks are checked for
presence and placement only.

ARCHIVE may be compressed (detected by content) or "-" for standard input.
On failure it prints one line naming the archive, the byte offset and the
problem.

-v prints what Proxmox's "vma verify -v" prints, on standard output: the
listing ("vmatool list"), then "progress N% (read BYTES bytes, duration S
sec)" whenever the percentage changes, and a summary. As in Proxmox's
tool, BYTES counts whole 64 KiB clusters and N counts them against each
device's whole clusters, so it passes 100% on devices that are not 64
KiB-aligned.

OPTIONS:

EXAMPLES:
  vmatool verify vzdump-qemu-100-2024_01_01-00_00_00.vma.zst
  vmatool verify --json backup.vma
  vmatool verify -v backup.vma

EXIT STATUS:
  0 the archive is complete and valid, 1 it is not (or cannot be read),
  2 usage error, 130 interrupted.
`

func runVerify(ctx context.Context, s *streams, args []string) error {
	fs := newFlags("verify")
	asJSON := fs.Bool("json", false, "print the result as JSON (also on failure)")
	quiet := fs.BoolP("quiet", "q", false, "no progress display")
	addProgressFlag(fs, s)
	verbose := fs.BoolP("verbose", "v", false, "print the listing, progress lines and a summary, as Proxmox's vma verify -v does")
	window := addMaxWindowFlag(fs)
	if err := parseFlags(s, fs, verifyHelp, args); err != nil {
		return err
	}
	path, err := oneArg(fs, "ARCHIVE")
	if err != nil {
		return err
	}
	if *verbose && *asJSON {
		return usagef("-v and --json both want standard output: choose one")
	}
	st, err := verifyArchive(ctx, s, path, *quiet || *asJSON || *verbose, *verbose, window.option())
	if *asJSON {
		doc := verifyJSONDoc{Archive: path, OK: err == nil}
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return err
			}
			doc.Error = oneLine(err.Error())
			var fe *vma.FormatError
			if errors.As(err, &fe) {
				off := fe.Offset
				doc.Offset = &off
				doc.Kind = fe.Err.Error()
			}
		} else {
			a := archiveJSON(st.stats, st.comp)
			doc.Result = &a
		}
		if jerr := writeJSON(s.out, doc); jerr != nil {
			return jerr
		}
		if err != nil {
			return errSilent
		}
		return nil
	}
	return err
}

type verified struct {
	stats *vma.Stats
	comp  vma.Compression
}

// verifyArchive verifies the archive at path; verbose prints vma's -v
// lines on standard output.
func verifyArchive(ctx context.Context, s *streams, path string, quiet, verbose bool, opts ...vma.DecompressOption) (*verified, error) {
	a, err := openArchive(s, path, quiet, "verify", opts...)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	var stats *readStats
	if verbose {
		writeListing(s.out, a.reader.Header())
		stats = newReadStats(s.out, s.now, a.reader.Header(), true)
		if err := stats.attach(a.reader); err != nil {
			return nil, err
		}
		defer stats.stop()
	}
	st, err := vma.Verify(ctx, a.reader)
	if err != nil {
		return nil, a.wrap(err)
	}
	if stats != nil {
		stats.summary()
	}
	a.meter.Done(-1, a.name)
	return &verified{st, a.comp}, nil
}

type verifyJSONDoc struct {
	Archive string          `json:"archive"`
	OK      bool            `json:"ok"`
	Error   string          `json:"error,omitempty"`
	Kind    string          `json:"kind,omitempty"`
	Offset  *int64          `json:"offset,omitempty"`
	Result  *archiveJSONDoc `json:"result,omitempty"`
}
