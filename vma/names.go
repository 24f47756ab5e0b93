package vma

import (
	"fmt"
	"strings"
)

// The names of an archive become file names. Proxmox's "vma extract"
// writes each config to DIR/<name>, each disk to DIR/disk-<devname>.raw by
// way of DIR/tmp-disk-<devname>.raw, and the VM state to DIR/vmstate.bin;
// vmatool's unpack writes the same final names (staging them elsewhere). The rules here keep every one of those names a
// plain entry of DIR and apart from the others. They are the only copy of
// these rules: Verify and Extract refuse a header that breaks them, so an
// archive that verifies also extracts, and the Writer refuses to make one.

// maxFileName is NAME_MAX of common filesystems: the longest name one
// directory entry may have.
const maxFileName = 255

// FileName returns the name, inside the target directory, of the file that
// receives the device's data on extraction.
func (d Device) FileName() string {
	if d.IsVMState() {
		return "vmstate.bin"
	}
	return "disk-" + d.Name + ".raw"
}

// TempFileName returns the name Proxmox's extract writes a disk under
// until the whole archive has been read, or "" for the VM state, which it
// writes under its final name.
func (d Device) TempFileName() string {
	if d.IsVMState() {
		return ""
	}
	return "tmp-disk-" + d.Name + ".raw"
}

// NameOffset returns the archive offset of the config's name in the
// header's blob table, or 0 for a config that was not read from an archive.
func (c Config) NameOffset() int64 { return c.nameOff }

// NameOffset returns the archive offset of the device's name in the
// header's blob table, or 0 for a device that was not read from an archive.
func (d Device) NameOffset() int64 { return d.nameOff }

// CheckNames checks that every config name, and every file name extraction
// derives from a device name (FileName, TempFileName), is a plain file name
// inside the target directory (not empty, "." or "..", without '/' or '\',
// at most 255 bytes), and that no two of them are the same. It returns a
// *FormatError of kind ErrUnsafeName or ErrDuplicateName at the offset of
// the offending name. Reading a header does not check names, so that an
// archive with bad ones can still be listed; Verify and Extract do.
func (h *Header) CheckNames() error {
	if is := checkNames(h.Configs, h.Devices); is != nil {
		return &FormatError{Offset: is.off, What: is.what, Err: is.kind}
	}
	return nil
}

// nameIssue is a broken name rule: its kind (ErrUnsafeName or
// ErrDuplicateName), the offset of the name, and what is wrong.
type nameIssue struct {
	kind error
	off  int64
	what string
}

// checkNames applies the name rules to configs and devices and returns the
// first rule broken, or nil. Names are checked before clashes, and device
// outputs are claimed before configs, so that a config that takes a disk's
// file name is the one reported.
func checkNames(configs []Config, devs []Device) *nameIssue {
	for _, c := range configs {
		if p := fileNameProblem(c.Name); p != "" {
			return &nameIssue{ErrUnsafeName, c.nameOff, fmt.Sprintf("config name %s %s", quoteName(c.Name), p)}
		}
	}
	for _, d := range devs {
		if p := fileNameProblem(d.Name); p != "" {
			return &nameIssue{ErrUnsafeName, d.nameOff, fmt.Sprintf("device name %s (dev_id %d) %s", quoteName(d.Name), d.ID, p)}
		}
		for _, f := range [...]string{d.FileName(), d.TempFileName()} {
			if p := fileNameProblem(f); f != "" && p != "" {
				return &nameIssue{ErrUnsafeName, d.nameOff, fmt.Sprintf("device %s (dev_id %d) would be written to %s, which %s", quoteName(d.Name), d.ID, quoteName(f), p)}
			}
		}
	}
	type use struct {
		by     string // what is written there
		config bool
	}
	owner := make(map[string]use, len(configs)+2*len(devs)) // file name -> its first use
	for _, d := range devs {
		for _, f := range [...]string{d.FileName(), d.TempFileName()} {
			if f == "" {
				continue
			}
			if o, ok := owner[f]; ok {
				return &nameIssue{ErrDuplicateName, d.nameOff, fmt.Sprintf("%s and device %q (dev_id %d) would both be written to %q", o.by, d.Name, d.ID, f)}
			}
			owner[f] = use{by: fmt.Sprintf("device %q (dev_id %d)", d.Name, d.ID)}
		}
	}
	for _, c := range configs {
		o, ok := owner[c.Name]
		switch {
		case ok && o.config:
			return &nameIssue{ErrDuplicateName, c.nameOff, fmt.Sprintf("config %q appears twice", c.Name)}
		case ok:
			return &nameIssue{ErrDuplicateName, c.nameOff, fmt.Sprintf("config %q and %s would both be written to %q", c.Name, o.by, c.Name)}
		}
		owner[c.Name] = use{by: fmt.Sprintf("config %q", c.Name), config: true}
	}
	return nil
}

// fileNameProblem says why name cannot be one entry of a directory, or
// returns "". On Linux only '/' separates, but a name with '\' would escape
// the directory on Windows, and no writer makes one.
func fileNameProblem(name string) string {
	switch {
	case name == "":
		return "is empty"
	case name == "." || name == "..":
		return "names a directory"
	case strings.HasPrefix(name, "/"):
		return "is an absolute path"
	case strings.ContainsAny(name, `/\`):
		return "contains a path separator"
	case strings.IndexByte(name, 0) >= 0:
		return "contains a NUL byte"
	case len(name) > maxFileName:
		return fmt.Sprintf("is %d bytes long, more than %d", len(name), maxFileName)
	}
	return ""
}

// quoteName quotes a name for a message, cut short if it is long: the
// names worth reporting are often the hostile ones.
func quoteName(name string) string {
	const keep = 64
	if len(name) <= keep {
		return fmt.Sprintf("%q", name)
	}
	return fmt.Sprintf("%q...", name[:keep])
}
