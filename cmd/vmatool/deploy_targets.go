package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/vmatool/vmatool/internal/deploy"
)

// loadTargets reads a targets file: a JSON list of deploy.Target objects
// (or {"targets": [...]}), each decoded over the defaults with unknown
// keys refused. apply then puts the command line's per-target flags over
// each, so that flags given on the command line win.
func loadTargets(path string, apply func(*deploy.Target) error) ([]deploy.Target, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var list []json.RawMessage
	if err := json.Unmarshal(data, &list); err != nil {
		var wrapped struct {
			Targets []json.RawMessage `json:"targets"`
		}
		if err2 := json.Unmarshal(data, &wrapped); err2 != nil || wrapped.Targets == nil {
			return nil, fmt.Errorf("%s: want a JSON list of targets: %v", path, err)
		}
		list = wrapped.Targets
	}
	targets := make([]deploy.Target, 0, len(list))
	for i, raw := range list {
		t := deploy.DefaultTarget()
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&t); err != nil {
			return nil, fmt.Errorf("%s: target %d: %v", path, i+1, strings.TrimPrefix(err.Error(), "json: "))
		}
		if err := apply(&t); err != nil {
			return nil, err
		}
		if t.Name == "" {
			t.Name = fmt.Sprintf("target%d", i+1)
		}
		targets = append(targets, t)
	}
	return targets, nil
}

// selectTargets keeps the targets named by --target or tagged by --tag;
// with neither, all of them.
func selectTargets(all []deploy.Target, names, tags []string) ([]deploy.Target, error) {
	if len(names) == 0 && len(tags) == 0 {
		return all, nil
	}
	var out []deploy.Target
	for _, t := range all {
		picked := slices.Contains(names, t.Name)
		for _, tag := range tags {
			picked = picked || slices.Contains(t.Tags, tag)
		}
		if picked {
			out = append(out, t)
		}
	}
	for _, n := range names {
		if !slices.ContainsFunc(all, func(t deploy.Target) bool { return t.Name == n }) {
			return nil, fmt.Errorf("no target named %q", n)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no target has tag %s", strings.Join(tags, " or "))
	}
	return out, nil
}
