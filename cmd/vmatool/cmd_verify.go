package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/spf13/pflag"
	"time"

	"github.com/vmatool/vmatool/vma"
)

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
problem. On success it prints nothing, except on a terminal (without
--quiet): one line such as "backup.vma.zst: OK, 2 devices, 3.0 GiB,
1.2 GiB stored, uuid ..., in 1.4 s".

--json prints {"file", "ok": true, the archive's fields as info --json
and list --json print them (uuid, ctime, ctime_unix, compression, configs,
devices), "stats": {"header_size", "archive_size", "extents"}}, or on
failure {"file", "ok": false, "error", "kind", "offset"}; see "JSON
output" in the README.

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

// verifyOptions are verify's flags and argument (ARCHIVE).
type verifyOptions struct {
	cmdLine
	asJSON   bool
	quiet    bool
	progress bool
	verbose  bool
	window   maxWindow
}

func (o *verifyOptions) addFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.asJSON, "json", false, "print the result as JSON (also on failure)")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "no progress display, and no summary line on a terminal")
	addProgressFlag(fs, &o.progress)
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "print the listing, progress lines and a summary, as Proxmox's vma verify -v does")
	addMaxWindowFlag(fs, &o.window)
}

// runVerify verifies the archive and reports as the flags ask.
func runVerify(ctx context.Context, s *streams, o *verifyOptions) error {
	path, err := oneArg(o.args, "ARCHIVE")
	if err != nil {
		return err
	}
	if o.verbose && o.asJSON {
		return usagef("-v and --json both want standard output: choose one")
	}
	s = s.withProgress(o.progress)
	start := s.now()
	v, err := verifyArchive(ctx, s, path, o.quiet || o.asJSON || o.verbose, o.verbose, o.window.option())
	if o.asJSON {
		if errors.Is(err, context.Canceled) {
			return err
		}
		if jerr := writeJSON(s.out, newVerifyJSON(path, v, err)); jerr != nil {
			return jerr
		}
		if err != nil {
			return errSilent // the document holds the error
		}
		return nil
	}
	if err == nil && s.outIsTTY && !o.quiet && !o.verbose {
		fmt.Fprintln(s.out, verifySummary(path, v.doc, s.now().Sub(start)))
	}
	return err
}

// verified is what verifyArchive learned about a valid archive.
type verified struct {
	doc   *ArchiveDoc
	stats *vma.Stats
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
	if s.outIsTTY && !quiet && !verbose {
		a.meter.Clear() // the one line on standard output says it all
	} else {
		a.meter.Done(-1, a.name)
	}
	return &verified{newArchiveDoc(a), st}, nil
}

// verifySummary is the line verify prints for a person at a terminal.
func verifySummary(path string, doc *ArchiveDoc, took time.Duration) string {
	if path == "-" {
		path = "<stdin>" // as errors name it
	}
	size, stored := doc.totals()
	noun := "devices"
	if len(doc.Devices) == 1 {
		noun = "device"
	}
	return fmt.Sprintf("%s: OK, %d %s, %s, %s stored, uuid %s, in %.1f s",
		path, len(doc.Devices), noun, humanBytes(size), humanBytes(stored), doc.UUID, took.Seconds())
}

// verifyJSONDoc is verify --json: on success the archive as info and list
// describe it, with verify's own stats; on failure the error, its kind and
// the archive offset where it was found.
type verifyJSONDoc struct {
	File   string `json:"file"`
	OK     bool   `json:"ok"`
	Error  string `json:"error,omitempty"`
	Kind   string `json:"kind,omitempty"`
	Offset *int64 `json:"offset,omitempty"`
	*ArchiveDoc
	Stats *verifyStats `json:"stats,omitempty"`
}

// verifyStats are verify's own fields: what it read.
type verifyStats struct {
	HeaderSize  int64 `json:"header_size"`  // bytes of the header
	ArchiveSize int64 `json:"archive_size"` // bytes of the whole archive, uncompressed
	Extents     int64 `json:"extents"`
}

func newVerifyJSON(path string, v *verified, err error) verifyJSONDoc {
	doc := verifyJSONDoc{File: path, OK: err == nil}
	if err != nil {
		doc.Error = hideTempNames(oneLine(err.Error()))
		var fe *vma.FormatError
		if errors.As(err, &fe) {
			off := fe.Offset
			doc.Offset = &off
			doc.Kind = fe.Err.Error()
		}
		return doc
	}
	doc.ArchiveDoc = v.doc
	doc.Stats = &verifyStats{HeaderSize: v.stats.Header.Size, ArchiveSize: v.stats.ArchiveSize, Extents: v.stats.Extents}
	return doc
}
