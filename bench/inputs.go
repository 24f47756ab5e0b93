package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// input is a file the rows read, made once per harness run. Inputs that
// need a missing tool are skipped, not failed: the rows that use them
// report the reason.
type input struct {
	name  string // placeholder in row commands, e.g. {img}
	file  string // under the run directory
	deps  []string
	tools []string
	// space estimates the bytes the input takes, for the up-front check
	// that the work directory can hold everything.
	space func(c *config) int64
	make  func(ctx context.Context, ws *workspace, path string) error
}

func inputTable() []*input {
	return []*input{
		{
			name: "img", file: "img.raw",
			space: func(c *config) int64 { return c.size * (100 - pctHoles) / 100 },
			make: func(_ context.Context, ws *workspace, path string) error {
				return generate(path, genSpec{Kind: kindMixed, Size: ws.cfg.size, Seed: ws.cfg.seed})
			},
		},
		{
			name: "qcow2", file: "img.qcow2", deps: []string{"img"}, tools: []string{"qemu-img"},
			space: func(c *config) int64 { return c.size / 2 },
			make: func(_ context.Context, ws *workspace, path string) error {
				return makeQcow2(ws.path("img"), path, true)
			},
		},
		{
			name: "qcow2-plain", file: "img-plain.qcow2", deps: []string{"img"}, tools: []string{"qemu-img"},
			space: func(c *config) int64 { return c.size * (100 - pctHoles) / 100 },
			make: func(_ context.Context, ws *workspace, path string) error {
				return makeQcow2(ws.path("img"), path, false)
			},
		},
		{
			// Made by vmatool: the archive under test for verify and unpack.
			name: "vma", file: "archive.vma", deps: []string{"img"},
			space: func(c *config) int64 { return c.size * (100 - pctHoles) / 100 },
			make: func(ctx context.Context, ws *workspace, path string) error {
				_, err := runShell(ctx, ws.dir, ws.expand("{vmatool} pack -q -o "+shellQuote(path)+" {img}"))
				return err
			},
		},
		{
			// Compressed by the zstd command, as vzdump does, so verify
			// reads the frames real backups have.
			name: "vma.zst", file: "archive.vma.zst", deps: []string{"vma"}, tools: []string{"zstd"},
			space: func(c *config) int64 { return c.size / 2 },
			make: func(ctx context.Context, ws *workspace, path string) error {
				_, err := runShell(ctx, ws.dir, ws.expand("zstd -T0 -3 -q {vma} -o "+shellQuote(path)))
				return err
			},
		},
		{
			// Packed by vmatool as .vma.zst: independent 2 MiB frames,
			// which decode on every core.
			name: "vma.zst-ours", file: "archive-ours.vma.zst", deps: []string{"img"},
			space: func(c *config) int64 { return c.size / 2 },
			make: func(ctx context.Context, ws *workspace, path string) error {
				_, err := runShell(ctx, ws.dir, ws.expand("{vmatool} pack -q -o "+shellQuote(path)+" {img}"))
				return err
			},
		},
		{
			// Compressed by the lzop command, as vzdump does for .vma.lzo.
			name: "vma.lzo", file: "archive.vma.lzo", deps: []string{"vma"}, tools: []string{"lzop"},
			space: func(c *config) int64 { return c.size / 2 },
			make: func(ctx context.Context, ws *workspace, path string) error {
				_, err := runShell(ctx, ws.dir, ws.expand("lzop -q -c {vma} > "+shellQuote(path)))
				return err
			},
		},
		{
			name: "sparse", file: "sparse.raw",
			space: func(c *config) int64 { return c.sparseData },
			make: func(_ context.Context, ws *workspace, path string) error {
				return generate(path, genSpec{Kind: kindSparseData, Size: ws.cfg.sparseSize, Data: ws.cfg.sparseData, Seed: ws.cfg.seed})
			},
		},
		{
			// The same data in 1 MiB runs spread evenly over the hole:
			// one data range per run, each with holes on both sides.
			name: "sparse-spread", file: "sparse-spread.raw",
			space: func(c *config) int64 { return c.sparseData },
			make: func(_ context.Context, ws *workspace, path string) error {
				return generate(path, genSpec{Kind: kindSparseData, Size: ws.cfg.sparseSize, Data: ws.cfg.sparseData,
					Pieces: ws.cfg.sparseData / runSize, Seed: ws.cfg.seed})
			},
		},
		{
			// The same bytes as the data inside sparse.raw, without the hole.
			name: "dense", file: "dense.raw",
			space: func(c *config) int64 { return c.sparseData },
			make: func(_ context.Context, ws *workspace, path string) error {
				return generate(path, genSpec{Kind: kindDense, Size: ws.cfg.sparseData, Seed: ws.cfg.seed})
			},
		},
	}
}

// inputState is what became of an input: made, skipped or failed.
type inputState struct {
	skip string // why it was not made, with no fault of vmatool's
	err  error
	took time.Duration
}

// need makes the named input and its dependencies once, and reports
// whether it exists; if not, the state says why.
func (ws *workspace) need(ctx context.Context, name string) *inputState {
	if st, ok := ws.states[name]; ok {
		return st
	}
	in := ws.inputs[name]
	st := &inputState{}
	ws.states[name] = st
	for _, d := range in.deps {
		if ds := ws.need(ctx, d); ds.skip != "" || ds.err != nil {
			st.skip, st.err = ds.skip, ds.err
			return st
		}
	}
	if t := missingTool(in.tools); t != "" {
		st.skip = t + " not installed"
		return st
	}
	path := ws.path(name)
	ws.logf("making %s", in.file)
	start := time.Now()
	if err := in.make(ctx, ws, path); err != nil {
		st.err = fmt.Errorf("making input %s: %w", in.file, err)
		ws.logf("%v", st.err)
		return st
	}
	st.took = time.Since(start)
	ws.logf("made %s: %s, %s allocated, in %s", in.file, formatBytes(fileSize(path)),
		formatBytes(allocatedBytes(path)), fmtDuration(st.took))
	return st
}

func (ws *workspace) path(name string) string {
	return filepath.Join(ws.dir, ws.inputs[name].file)
}

// missingTool returns the first tool not on PATH, or "".
func missingTool(tools []string) string {
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			return t
		}
	}
	return ""
}

// expand fills a command template: {vmatool}, {w}/name for scratch files
// in the run directory, and {name} for each input.
func (ws *workspace) expand(tmpl string) string {
	pairs := []string{"{vmatool}", shellQuote(ws.vmatool), "{w}", shellQuote(ws.dir)}
	for name := range ws.inputs {
		pairs = append(pairs, "{"+name+"}", shellQuote(ws.path(name)))
	}
	return strings.NewReplacer(pairs...).Replace(tmpl)
}
