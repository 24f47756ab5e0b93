package main

import (
	"context"
	"fmt"
	"github.com/spf13/pflag"
	"io"
	"strings"

	"github.com/vmatool/vmatool/vma"
)

const listHelp = `Usage: vmatool list [--json] ARCHIVE

Prints the configs and devices of a VMA archive in the format of Proxmox's
"vma list", which qmrestore parses:

  CFG: size: <bytes> name: <name>
  DEV: dev_id=<id> size: <bytes> devname: <name>
  CTIME: <creation time, ctime(3) format, local time>

ARCHIVE may be compressed (zstd, gzip, lzop, bzip2: detected by content) or
"-" for standard input. Plain output reads only the header. --json also
gives the uuid and, per device, the bytes the archive stores; it reads (and
so verifies) the whole archive. Its fields are those of info --json and
verify --json for the same archive (see "JSON output" in the README): file,
uuid, ctime (RFC 3339), ctime_unix, compression, configs (name, size) and
devices (id, name, size, stored_bytes, vmstate).

OPTIONS:

EXAMPLES:
  vmatool list vzdump-qemu-100-2024_01_01-00_00_00.vma.zst
  zstd -dc backup.vma.zst | vmatool list -
  vmatool list --json backup.vma | jq '.devices[].stored_bytes'

EXIT STATUS:
  0 ok, 1 unreadable or malformed archive, 2 usage error, 130 interrupted.
`

// listOptions are list's flags and argument (ARCHIVE).
type listOptions struct {
	cmdLine
	asJSON bool
	window maxWindow
}

func (o *listOptions) addFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.asJSON, "json", false, "print JSON, with uuid and stored bytes per device (reads the whole archive)")
	addMaxWindowFlag(fs, &o.window)
}

// runList prints the archive's listing, or with --json its description.
func runList(ctx context.Context, s *streams, o *listOptions) error {
	a, err := openArchiveArg(s, o.args, o.window)
	if err != nil {
		return err
	}
	defer a.Close()
	if !o.asJSON {
		writeListing(s.out, a.reader.Header())
		return nil
	}
	if _, err := vma.Verify(ctx, a.reader); err != nil {
		return a.wrap(err)
	}
	return writeJSON(s.out, listJSONDoc{File: o.args[0], ArchiveDoc: newArchiveDoc(a)})
}

// writeListing prints what "vma list" prints; CTIME comes last because
// qmrestore acts on that line.
func writeListing(w io.Writer, h *vma.Header) {
	var b strings.Builder
	for _, c := range h.Configs {
		fmt.Fprintf(&b, "CFG: size: %d name: %s\n", len(c.Data), c.Name)
	}
	for _, d := range h.Devices {
		if d.IsVMState() {
			fmt.Fprintf(&b, "VMSTATE: dev_id=%d memory: %d\n", d.ID, d.Size)
			continue
		}
		fmt.Fprintf(&b, "DEV: dev_id=%d size: %d devname: %s\n", d.ID, d.Size, d.Name)
	}
	fmt.Fprintf(&b, "CTIME: %s\n", h.Ctime.Local().Format("Mon Jan _2 15:04:05 2006"))
	io.WriteString(w, b.String())
}

// listJSONDoc is list --json: the archive as info and verify describe it.
type listJSONDoc struct {
	File string `json:"file"`
	*ArchiveDoc
}
