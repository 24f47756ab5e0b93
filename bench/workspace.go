package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// workspace is one harness run's private directory under -dir, so that
// several people benchmarking on one machine never share files.
type workspace struct {
	cfg        *config
	parent     string
	madeParent bool
	dir        string
	vmatool    string
	inputs     map[string]*input
	states     map[string]*inputState
	log        io.Writer
}

func newWorkspace(c *config, log io.Writer) (*workspace, error) {
	ws := &workspace{cfg: c, parent: c.dir, inputs: map[string]*input{}, states: map[string]*inputState{}, log: log}
	for _, in := range inputTable() {
		ws.inputs[in.name] = in
	}
	if _, err := os.Stat(c.dir); errors.Is(err, fs.ErrNotExist) {
		ws.madeParent = true
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(c.dir, "run-")
	if err != nil {
		return nil, err
	}
	ws.dir = dir
	return ws, nil
}

// remove deletes the run directory, and -dir too if this run created it
// and nobody else has put anything there meanwhile.
func (ws *workspace) remove() {
	os.RemoveAll(ws.dir)
	if ws.madeParent {
		os.Remove(ws.parent)
	}
}

func (ws *workspace) logf(format string, args ...any) {
	fmt.Fprintf(ws.log, "bench: "+format+"\n", args...)
}

// checkSpace fails early when the inputs of the selected rows, plus room
// for the largest outputs, cannot fit: a full tmpfs takes RAM from
// everyone on the machine.
func (ws *workspace) checkSpace(rows []row) error {
	free := freeBytes(ws.dir)
	if free < 0 {
		return nil
	}
	need := map[string]bool{}
	var add func(string)
	add = func(name string) {
		if !need[name] {
			need[name] = true
			for _, d := range ws.inputs[name].deps {
				add(d)
			}
		}
	}
	for _, r := range rows {
		for _, in := range r.inputs {
			add(in)
		}
	}
	total := ws.cfg.size // scratch outputs: a decoded raw plus its zstd copy at most
	for name := range need {
		total += ws.inputs[name].space(ws.cfg)
	}
	if total > free {
		return fmt.Errorf("%s has %s free, the selected rows need about %s: use a smaller -size, fewer rows (-only) or another -dir",
			ws.parent, formatBytes(free), formatBytes(total))
	}
	return nil
}

// buildVMATool compiles the command under test into the run directory, so
// the binary is the checkout's code as it is now and runs from tmpfs.
func (ws *workspace) buildVMATool(ctx context.Context) error {
	if ws.cfg.vmatool != "" {
		p, err := exec.LookPath(ws.cfg.vmatool)
		if err != nil {
			return err
		}
		ws.vmatool, err = filepath.Abs(p)
		return err
	}
	ws.vmatool = filepath.Join(ws.dir, "vmatool")
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", ws.vmatool, "github.com/vmatool/vmatool/cmd/vmatool")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/vmatool: %w\n%s", err, out)
	}
	ws.logf("built %s in %s", ws.vmatool, fmtDuration(time.Since(start)))
	return nil
}
