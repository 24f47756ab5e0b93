package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"
)

// report is everything one harness run measured; -json prints it as is.
type report struct {
	Command string        `json:"command"`
	Machine machine       `json:"machine"`
	Config  configReport  `json:"config"`
	Inputs  []inputReport `json:"inputs"`
	Rows    []rowResult   `json:"rows"`
}

type configReport struct {
	Size       int64  `json:"size"`
	Runs       int    `json:"runs"`
	Seed       uint64 `json:"seed"`
	SparseSize int64  `json:"sparse_size"`
	SparseData int64  `json:"sparse_data"`
	Smoke      bool   `json:"smoke"`
}

func reportConfig(c *config) configReport {
	return configReport{Size: c.size, Runs: c.runs, Seed: c.seed, SparseSize: c.sparseSize, SparseData: c.sparseData, Smoke: c.smoke}
}

type inputReport struct {
	File      string  `json:"file"`
	Size      int64   `json:"size"`
	Allocated int64   `json:"allocated"`
	Seconds   float64 `json:"seconds_to_make"`
}

// inputReports lists the inputs that were made, in table order.
func (ws *workspace) inputReports() []inputReport {
	var out []inputReport
	for _, in := range inputTable() {
		st, ok := ws.states[in.name]
		if !ok || st.skip != "" || st.err != nil {
			continue
		}
		p := filepath.Join(ws.dir, in.file)
		out = append(out, inputReport{File: in.file, Size: fileSize(p), Allocated: allocatedBytes(p), Seconds: st.took.Seconds()})
	}
	return out
}

// commandLine is how to reproduce the run.
func commandLine(argv []string) string {
	parts := []string{"go", "run", "./bench"}
	for _, a := range argv {
		parts = append(parts, shellQuote(a))
	}
	return strings.Join(parts, " ")
}

func (rep *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // commands hold > and &&
	return enc.Encode(rep)
}

func (rep *report) writeMarkdown(w io.Writer) error {
	var b strings.Builder
	c := rep.Config
	runs := fmt.Sprintf("%d alternating runs each, medians", c.Runs)
	if c.Runs == 1 {
		runs = "1 run each (smoke: times are indicative only)"
	}
	fmt.Fprintf(&b, "\n## vmatool vs reference: %s mixed image, %s\n\n", formatBytes(c.Size), runs)
	b.WriteString("| row | reference | ref | vmatool | vmatool/ref | vmatool peak RSS | vmatool CPU | output vmatool / ref | notes |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---|---|\n")
	for _, r := range rep.Rows {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", r.Name, r.Reference, strings.Join(markdownCells(r), " | "))
	}
	fmt.Fprintf(&b, "\ncommand: `%s`\n", rep.Command)
	m := rep.Machine
	fmt.Fprintf(&b, "machine: %d cores (GOMAXPROCS %d), %s, %s %s, %s; load average %s at start, %s at end\n",
		m.Cores, m.GOMAXPROCS, m.CPU, m.OS, m.Kernel, m.Go, m.LoadStart, m.LoadEnd)
	fmt.Fprintf(&b, "tools: vmatool %s; %s; %s\n", orUnknown(m.VMATool), m.Tools["qemu-img"], m.Tools["zstd"])
	var ins []string
	for _, in := range rep.Inputs {
		ins = append(ins, fmt.Sprintf("%s %s (%s allocated)", in.File, formatBytes(in.Size), formatBytes(in.Allocated)))
	}
	if len(ins) > 0 {
		fmt.Fprintf(&b, "inputs: %s\n", strings.Join(ins, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// markdownCells are the columns after the row's name and reference.
func markdownCells(r rowResult) []string {
	switch r.Status {
	case statusSkipped:
		return []string{"", "", "", "", "", "", "skipped: " + escapeCell(r.Reason)}
	case statusFailed:
		return []string{"", "", "", "", "", "", "**FAILED**: " + escapeCell(r.Reason)}
	}
	sizes := ""
	if r.VMATool.OutputBytes > 0 || r.Ref.OutputBytes > 0 {
		sizes = formatBytes(r.VMATool.OutputBytes) + " / " + formatBytes(r.Ref.OutputBytes)
		if r.SizeRatio > 0 {
			sizes += fmt.Sprintf(" = %.3f", r.SizeRatio)
		}
		if r.SizeAlloc {
			sizes += " (allocated)"
		}
	}
	var notes []string
	if r.Goal > 0 {
		op, met := "≤", r.Ratio <= r.Goal
		if r.GoalBelow {
			op, met = "<", r.Ratio < r.Goal
		}
		verdict := "met"
		if !met {
			verdict = "not met"
		}
		notes = append(notes, fmt.Sprintf("issue asks %s %g: %s", op, r.Goal, verdict))
	}
	if noisy(r.Ref) || noisy(r.VMATool) {
		notes = append(notes, fmt.Sprintf("noisy: ref %s–%s, vmatool %s–%s",
			fmtSeconds(r.Ref.Min), fmtSeconds(r.Ref.Max), fmtSeconds(r.VMATool.Min), fmtSeconds(r.VMATool.Max)))
	}
	return []string{
		fmtSeconds(r.Ref.Median), fmtSeconds(r.VMATool.Median), fmt.Sprintf("**%.2f**", r.Ratio),
		formatBytes(r.VMATool.PeakRSSKiB * kiB), fmtSeconds(r.VMATool.MedianCPU), sizes, strings.Join(notes, "; "),
	}
}

// noisy flags a command whose runs spread so widely that its median could
// move a lot with a few more runs: a hint to rerun with more -runs.
func noisy(s sideResult) bool {
	return len(s.WallSeconds) >= 3 && s.Max > 2*s.Min
}

func fmtSeconds(s float64) string { return fmtDuration(time.Duration(s * float64(time.Second))) }

func orUnknown(s string) string {
	if s == "" {
		return "(revision unknown)"
	}
	return s
}

// escapeCell keeps a reason on one table row.
func escapeCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
