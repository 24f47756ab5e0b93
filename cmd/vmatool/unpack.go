package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vmatool/vmatool/vma"
)

// unpackJob is what unpack and the Proxmox-style extract share: which
// devices to write where, and how outputs are named.
type unpackJob struct {
	dir     string
	devices []string // names to extract; empty means all
	force   bool
	// proxmoxTemps names disk temporaries tmp-disk-<dev>.raw and prints
	// DEVINFO lines, as Proxmox's vma extract does.
	proxmoxTemps bool
	verbose      io.Writer // DEVINFO and summary lines, or nil
}

// unpackArchive writes every config and the selected devices of a into
// job.dir. Outputs appear only if the whole archive was valid and complete;
// otherwise nothing is left behind, including a directory it created.
func unpackArchive(ctx context.Context, a *archiveInput, job unpackJob) (err error) {
	h := a.reader.Header()
	selected, err := selectDevices(h, job.devices)
	if err != nil {
		return fmt.Errorf("%s: %w", a.name, err)
	}
	if err := h.CheckNames(); err != nil {
		return a.wrap(err)
	}
	created, err := makeDir(job.dir, job.proxmoxTemps)
	if err != nil {
		return err
	}
	var outs outGroup
	defer func() {
		if err != nil {
			outs.abort()
			if created {
				os.Remove(job.dir) // only succeeds if empty: never removes a user's files
			}
		}
	}()
	for _, c := range h.Configs {
		f, err := outs.create(filepath.Join(job.dir, c.Name), "", job.force)
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
		tmp := ""
		if job.proxmoxTemps {
			tmp = d.TempFileName()
		}
		f, err := outs.create(filepath.Join(job.dir, d.FileName()), tmp, job.force)
		if err != nil {
			return a.outputErr(fmt.Sprintf("device %q", d.Name), d.NameOffset(), err)
		}
		// Sized first, so the blocks Extract skips are holes.
		if err := f.Truncate(d.Size); err != nil {
			return a.outputErr(fmt.Sprintf("device %q", d.Name), d.NameOffset(), err)
		}
		if job.verbose != nil && tmp != "" {
			fmt.Fprintf(job.verbose, "DEVINFO %s %d\n", filepath.Join(job.dir, tmp), d.Size)
		}
		targets[d.ID] = f
	}
	if err := vma.Extract(ctx, a.reader, targets, vma.ExtractOptions{}); err != nil {
		return a.wrap(err)
	}
	if err := outs.commit(); err != nil {
		return err
	}
	if job.verbose != nil {
		printRestoreSummary(job.verbose, a.reader, h, selected)
	}
	return nil
}

func printRestoreSummary(w io.Writer, r *vma.Reader, h *vma.Header, selected map[int]bool) {
	var total, stored int64
	for _, d := range h.Devices {
		if selected[d.ID] {
			total += d.Size
			stored += r.StoredBytes(d.ID)
		}
	}
	if total == 0 {
		fmt.Fprintln(w, "vma archive contains no image data")
		return
	}
	sparse := total - stored
	fmt.Fprintf(w, "total bytes read %d, sparse bytes %d (%.3g%%)\n", total, sparse, float64(sparse)*100/float64(total))
	fmt.Fprintf(w, "space reduction due to 4K zero blocks %.3g%%\n", float64(sparse)*100/float64(total))
}

// selectDevices resolves names to dev_ids; the VM state, if any, is always
// included, as in Proxmox's extract.
func selectDevices(h *vma.Header, names []string) (map[int]bool, error) {
	sel := map[int]bool{}
	for _, d := range h.Devices {
		if len(names) == 0 || d.IsVMState() || slices.Contains(names, d.Name) {
			sel[d.ID] = true
		}
	}
	for _, n := range names {
		if _, ok := h.Device(n); !ok {
			var have []string
			for _, d := range h.Devices {
				have = append(have, d.Name)
			}
			return nil, fmt.Errorf("no device named %q in the archive (it has: %s)", n, strings.Join(have, ", "))
		}
	}
	return sel, nil
}

// makeDir creates dir (with parents, unless mustBeNew, which follows
// Proxmox's extract: the directory must not exist). It reports whether it
// created the final directory.
func makeDir(dir string, mustBeNew bool) (bool, error) {
	if mustBeNew {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return false, fmt.Errorf("unable to create target directory %s: %w", dir, err)
		}
		return true, nil
	}
	st, err := os.Stat(dir)
	if err == nil {
		if !st.IsDir() {
			return false, fmt.Errorf("%s: not a directory", dir)
		}
		return false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	return true, nil
}
