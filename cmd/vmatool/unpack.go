package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/vmatool/vmatool/vma"
)

// unpackJob is what unpack and the Proxmox-style extract share: which
// devices to write where.
type unpackJob struct {
	dir     string
	devices []string // names to extract; empty means all
	force   bool
	// mustBeNew requires that dir not exist, as Proxmox's extract does.
	mustBeNew bool
	// anyDevices lets devices name disks the archive lacks, which
	// Proxmox's extract ignores.
	anyDevices bool
	devinfo    io.Writer  // DEVINFO lines, or nil
	stats      *readStats // counts for vma's -v lines, or nil
	warn       io.Writer  // warnings, such as an undo that failed
	// partial salvages a damaged archive (its reader must be made with
	// vma.WithSalvage): the outputs are committed with holes where data
	// is missing, and salvage says what.
	partial bool
	salvage *salvageResult
	// diskBytes is the size of the disks written, for the summary.
	diskBytes int64
}

// unpackArchive writes every config and the selected devices of a into
// job.dir, as one outputSet: they appear only if the whole archive was
// valid and complete; otherwise nothing is left behind, including the
// folders it created. With job.partial they appear once the archive has
// been read as far as it goes, and job.salvage lists what was missing.
func unpackArchive(ctx context.Context, a *archiveInput, job *unpackJob) (err error) {
	h := a.reader.Header()
	selected, err := selectDevices(h, job.devices, job.anyDevices)
	if err != nil {
		return fmt.Errorf("%s: %w", a.name, err)
	}
	if err := h.CheckNames(); err != nil {
		return a.wrap(err)
	}
	// Each output, and the archive entry it comes from for errors.
	var names []string
	type entry struct {
		what string
		off  int64
	}
	entries := map[string]entry{}
	for _, c := range h.Configs {
		names = append(names, c.Name)
		entries[c.Name] = entry{fmt.Sprintf("config %q", c.Name), c.NameOffset()}
	}
	for _, d := range h.Devices {
		if selected[d.ID] {
			names = append(names, d.FileName())
			entries[d.FileName()] = entry{fmt.Sprintf("device %q", d.Name), d.NameOffset()}
		}
	}
	set, err := newOutputSet(job.dir, names, job.mustBeNew, job.force, job.warn)
	if err != nil {
		var oc *outputConflict
		if errors.As(err, &oc) {
			e := entries[oc.name]
			return a.outputErr(e.what, e.off, oc.err)
		}
		return err
	}
	defer func() {
		if err != nil {
			set.abort()
		}
	}()
	for _, c := range h.Configs {
		f, err := set.create(c.Name)
		if err != nil {
			return a.outputErr(fmt.Sprintf("config %q", c.Name), c.NameOffset(), err)
		}
		if _, err := f.Write(c.Data); err != nil {
			return err
		}
	}
	targets := map[int]io.WriterAt{}
	for _, d := range h.Devices {
		if !selected[d.ID] {
			continue
		}
		name := d.FileName()
		f, err := set.create(name)
		if err != nil {
			return a.outputErr(fmt.Sprintf("device %q", d.Name), d.NameOffset(), err)
		}
		// Sized first, so the blocks Extract skips are holes.
		if err := f.Truncate(d.Size); err != nil {
			return a.outputErr(fmt.Sprintf("device %q", d.Name), d.NameOffset(), err)
		}
		if job.devinfo != nil && !d.IsVMState() {
			// Proxmox names the file being written; here it is in the
			// staging folder until the set is complete.
			fmt.Fprintf(job.devinfo, "DEVINFO %s %d\n", set.path(name), d.Size)
		}
		targets[d.ID] = f
		job.diskBytes += d.Size
	}
	if job.stats != nil {
		if err := job.stats.attach(a.reader); err != nil {
			return err
		}
		defer job.stats.stop()
	}
	if err := vma.Extract(ctx, a.reader, targets); err != nil {
		return a.wrap(err)
	}
	if job.partial {
		job.salvage = collectSalvage(a.reader, nil)
	}
	if err := set.commit(ctx); err != nil {
		return err
	}
	if job.stats != nil {
		job.stats.summary()
	}
	return nil
}

// selectDevices resolves names to dev_ids; the VM state, if any, is always
// included, as in Proxmox's extract. Names the archive lacks are an error
// unless anyNames.
func selectDevices(h *vma.Header, names []string, anyNames bool) (map[int]bool, error) {
	sel := map[int]bool{}
	for _, d := range h.Devices {
		if len(names) == 0 || d.IsVMState() || slices.Contains(names, d.Name) {
			sel[d.ID] = true
		}
	}
	for _, n := range names {
		if _, ok := h.Device(n); !ok && !anyNames {
			var have []string
			for _, d := range h.Devices {
				have = append(have, d.Name)
			}
			return nil, fmt.Errorf("no device named %q in the archive (it has: %s)", n, strings.Join(have, ", "))
		}
	}
	return sel, nil
}

// findDevice finds the device name names, with or without the drive-
// prefix Proxmox gives device names ("scsi0" finds drive-scsi0): an exact
// match first, so an archive that has both names still has each.
// Proxmox's extract matches exactly, and so does vmatool extract.
func findDevice(h *vma.Header, name string) (vma.Device, bool) {
	if d, ok := h.Device(name); ok {
		return d, true
	}
	bare := strings.TrimPrefix(name, "drive-")
	for _, d := range h.Devices {
		if strings.TrimPrefix(d.Name, "drive-") == bare {
			return d, true
		}
	}
	return vma.Device{}, false
}

// deviceNames resolves names given by the user to the archive's device
// names (findDevice), keeping a name the archive lacks as it is, for
// selectDevices to report.
func deviceNames(h *vma.Header, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n
		if d, ok := findDevice(h, n); ok {
			out[i] = d.Name
		}
	}
	return out
}
