package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Row outcomes.
const (
	statusOK      = "ok"
	statusSkipped = "skipped"
	statusFailed  = "failed"
)

// sideResult is one command of a row over all its runs.
type sideResult struct {
	Command     string    `json:"command"`
	WallSeconds []float64 `json:"wall_seconds"`
	Median      float64   `json:"median_seconds"`
	Min         float64   `json:"min_seconds"`
	Max         float64   `json:"max_seconds"`
	MedianCPU   float64   `json:"median_cpu_seconds"`
	PeakRSSKiB  int64     `json:"peak_rss_kib"`
	OutputBytes int64     `json:"output_bytes,omitempty"`
	cpu         []float64
}

func (s *sideResult) add(x sample) {
	s.WallSeconds = append(s.WallSeconds, x.Wall.Seconds())
	s.cpu = append(s.cpu, x.CPU.Seconds())
	s.PeakRSSKiB = max(s.PeakRSSKiB, x.MaxRSSKiB)
	s.Median, s.MedianCPU = median(s.WallSeconds), median(s.cpu)
	s.Min, s.Max = slices.Min(s.WallSeconds), slices.Max(s.WallSeconds)
}

type rowResult struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Reference string     `json:"reference"`
	Status    string     `json:"status"`
	Reason    string     `json:"reason,omitempty"`
	VMATool   sideResult `json:"vmatool"`
	Ref       sideResult `json:"ref"`
	Ratio     float64    `json:"ratio,omitempty"`      // vmatool/ref, median wall time
	SizeRatio float64    `json:"size_ratio,omitempty"` // vmatool/ref, output bytes
	SizeAlloc bool       `json:"size_is_allocated,omitempty"`
	Goal      float64    `json:"goal_ratio,omitempty"`
	GoalBelow bool       `json:"goal_strictly_below,omitempty"`
}

func runBench(args []string) error {
	c, err := parseConfig(args)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	rows := selectRows(c)
	if len(rows) == 0 {
		return fmt.Errorf("-only %q matches no row", c.only)
	}
	ws, err := newWorkspace(c, os.Stderr)
	if err != nil {
		return err
	}
	if c.keep {
		defer ws.logf("kept %s", ws.dir)
	} else {
		defer ws.remove()
	}
	if err := ws.checkSpace(rows); err != nil {
		return err
	}
	m := probeMachine()
	if err := ws.buildVMATool(ctx); err != nil {
		return err
	}
	if c.vmatool == "" {
		m.VMATool = vmatoolRevision()
	} else {
		m.VMATool = ws.vmatool
	}

	var results []rowResult
	for i, r := range rows {
		ws.logf("[%d/%d] %s", i+1, len(rows), r.name)
		res := ws.runRow(ctx, r)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		results = append(results, res)
	}
	m.LoadEnd = loadAverage()

	rep := report{Command: commandLine(c.argv), Machine: m, Config: reportConfig(c), Inputs: ws.inputReports(), Rows: results}
	if c.json {
		err = rep.writeJSON(os.Stdout)
	} else {
		err = rep.writeMarkdown(os.Stdout)
	}
	if err != nil {
		return err
	}
	failed := 0
	for _, r := range results {
		if r.Status == statusFailed {
			failed++
		}
	}
	if failed > 0 {
		if c.smoke {
			return fmt.Errorf("%d rows failed", failed)
		}
		ws.logf("%d rows failed: see the table", failed)
	}
	return nil
}

// selectRows applies -only, and puts the sparse sizes into the names.
func selectRows(c *config) []row {
	var rows []row
	fill := strings.NewReplacer("{sparseSize}", formatBytes(c.sparseSize), "{sparseData}", formatBytes(c.sparseData))
	for _, r := range rowTable() {
		r.name, r.refName = fill.Replace(r.name), fill.Replace(r.refName)
		if c.only == nil || c.only.MatchString(r.id) || c.only.MatchString(r.name) {
			rows = append(rows, r)
		}
	}
	return rows
}

// runRow makes the row's inputs, then alternates reference and vmatool
// runs, so that load from other processes lands on both sides alike.
func (ws *workspace) runRow(ctx context.Context, r row) rowResult {
	res := rowResult{ID: r.id, Name: r.name, Reference: r.refName, Goal: r.goal, GoalBelow: r.goalStrict, SizeAlloc: r.alloc,
		VMATool: sideResult{Command: ws.expand(r.vmatool)}, Ref: sideResult{Command: ws.expand(r.ref)}}
	if t := missingTool(r.tools); t != "" {
		return ws.skip(res, t+" not installed")
	}
	for _, name := range r.inputs {
		st := ws.need(ctx, name)
		if st.skip != "" {
			return ws.skip(res, "input "+ws.inputs[name].file+": "+st.skip)
		}
		if st.err != nil {
			return ws.fail(res, st.err.Error())
		}
	}
	defer ws.clean(r)
	for run := 1; run <= ws.cfg.runs; run++ {
		for _, side := range []struct {
			name string
			res  *sideResult
			out  string
		}{{"reference", &res.Ref, r.refOut}, {"vmatool", &res.VMATool, r.vmaOut}} {
			ws.clean(r)
			s, err := runShell(ctx, ws.dir, side.res.Command)
			if err != nil {
				return ws.fail(res, side.name+" command: "+err.Error())
			}
			side.res.add(s)
			if side.out != "" {
				side.res.OutputBytes = ws.outputBytes(side.out, r.alloc)
			}
			ws.logf("  run %d/%d %-9s %s", run, ws.cfg.runs, side.name, describeSample(s))
		}
	}
	res.Status = statusOK
	res.Ratio = res.VMATool.Median / res.Ref.Median
	if res.VMATool.OutputBytes > 0 && res.Ref.OutputBytes > 0 {
		res.SizeRatio = float64(res.VMATool.OutputBytes) / float64(res.Ref.OutputBytes)
	}
	return res
}

func (ws *workspace) skip(res rowResult, why string) rowResult {
	res.Status, res.Reason = statusSkipped, ws.short(why)
	ws.logf("  skipped: %s", why)
	return res
}

func (ws *workspace) fail(res rowResult, why string) rowResult {
	res.Status, res.Reason = statusFailed, ws.short(why)
	ws.logf("  FAILED: %s", why)
	return res
}

// short drops the run directory from paths in a message: it is long,
// random and gone by the time anyone reads the table.
func (ws *workspace) short(msg string) string {
	return strings.ReplaceAll(msg, ws.dir+string(filepath.Separator), "")
}

func (ws *workspace) clean(r row) {
	for _, s := range r.scratch {
		os.RemoveAll(filepath.Join(ws.dir, s))
	}
}

func (ws *workspace) outputBytes(name string, alloc bool) int64 {
	p := filepath.Join(ws.dir, name)
	if alloc {
		return allocatedBytes(p)
	}
	return fileSize(p)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func fmtDuration(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 100*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
}
