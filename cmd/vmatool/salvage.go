package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"

	"github.com/vmatool/vmatool/vma"
)

// partialHelp is the EXIT STATUS line of the commands that salvage.
const partialHelp = `  3 with --partial, the archive was damaged or cut short: every cluster
  that arrived intact was written, the rest left as holes (zeros), and the
  missing ranges are listed on standard error (and in --json),
`

// salvageResult is what a --partial read of an archive could not use.
type salvageResult struct {
	Missing    []missingJSON `json:"missing"`
	Damage     []damageJSON  `json:"damage"`
	MoreDamage int           `json:"more_damage,omitempty"`
}

// missingJSON is a range of a device the archive did not deliver, in bytes.
type missingJSON struct {
	Device string `json:"device"`
	Start  int64  `json:"start"`
	Length int64  `json:"length"`
}

// damageJSON is a stretch of the archive that was skipped.
type damageJSON struct {
	Offset int64  `json:"offset"`
	Resume *int64 `json:"resume"` // null: the archive ended there
	Error  string `json:"error"`
}

// collectSalvage gathers what a salvaging reader lost, once it has reached
// the end, with lost ranges a sink dropped on top (by dev_id).
func collectSalvage(r *vma.Reader, lost map[int][][2]int64) *salvageResult {
	sr := &salvageResult{Missing: []missingJSON{}, Damage: []damageJSON{}}
	names := map[int]string{}
	for _, d := range r.Header().Devices {
		names[d.ID] = d.Name
	}
	var ranges []vma.MissingRange
	for m := range r.Missing() {
		ranges = append(ranges, m)
	}
	for id, l := range lost {
		for _, x := range l {
			ranges = append(ranges, vma.MissingRange{Device: id, Name: names[id], Start: x[0], Length: x[1]})
		}
	}
	for _, m := range sortRanges(ranges) {
		sr.Missing = append(sr.Missing, missingJSON{Device: m.Name, Start: m.Start, Length: m.Length})
	}
	damage, more := r.Damage()
	for _, d := range damage {
		j := damageJSON{Offset: d.Offset, Error: oneLine(d.Err.Error())}
		if d.Resume >= 0 {
			resume := d.Resume
			j.Resume = &resume
		}
		sr.Damage = append(sr.Damage, j)
	}
	sr.MoreDamage = more
	return sr
}

// sortRanges orders ranges by device and offset and merges those that
// touch.
func sortRanges(rs []vma.MissingRange) []vma.MissingRange {
	slices.SortFunc(rs, func(a, b vma.MissingRange) int {
		return cmp.Or(cmp.Compare(a.Device, b.Device), cmp.Compare(a.Start, b.Start))
	})
	var out []vma.MissingRange
	for _, r := range rs {
		if k := len(out); k > 0 && out[k-1].Device == r.Device && out[k-1].Start+out[k-1].Length >= r.Start {
			out[k-1].Length = max(out[k-1].Length, r.Start+r.Length-out[k-1].Start)
			continue
		}
		out = append(out, r)
	}
	return out
}

// complete reports whether nothing was damaged or missing.
func (sr *salvageResult) complete() bool {
	return len(sr.Missing) == 0 && len(sr.Damage) == 0
}

// report prints one line per damaged stretch and per missing range, then a
// summary naming where the rest went.
func (sr *salvageResult) report(w io.Writer, cmd string, a *archiveInput, dest string) {
	for _, d := range sr.Damage {
		next := "the archive ends there"
		if d.Resume != nil {
			next = fmt.Sprintf("resumed at offset %d", *d.Resume)
		}
		fmt.Fprintf(w, "vmatool %s: %s: skipped damage at offset %d (%s); %s\n", cmd, a.name, d.Offset, d.Error, next)
	}
	if sr.MoreDamage > 0 {
		fmt.Fprintf(w, "vmatool %s: %s: and %d more damaged stretches\n", cmd, a.name, sr.MoreDamage)
	}
	var total int64
	devs := map[string]bool{}
	for _, m := range sr.Missing {
		fmt.Fprintf(w, "vmatool %s: %s: %s: missing %d bytes at offset %d\n", cmd, a.name, m.Device, m.Length, m.Start)
		total += m.Length
		devs[m.Device] = true
	}
	fmt.Fprintf(w, "vmatool %s: %s: salvaged in part: %d bytes in %d ranges of %d devices missing (left as zeros); the rest is in %s\n",
		cmd, a.name, total, len(sr.Missing), len(devs), dest)
}

// damageHint adds to the error of a damaged archive the option that
// salvages it.
func damageHint(err error, cmd string) error {
	if vma.IsDamage(err) {
		return fmt.Errorf("%w (vmatool %s --partial writes what is intact)", err, cmd)
	}
	return err
}
