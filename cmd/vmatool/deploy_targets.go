package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

// deployTarget is one node and VM to deploy to.
type deployTarget struct {
	name string
	tags []string
	opts *deployOptions
}

// globalDeployFlags are not per target, so a targets file cannot set them.
var globalDeployFlags = map[string]bool{"targets": true, "tag": true, "target": true, "parallel": true, "dry-run": true, "json": true, "quiet": true, "help": true}

// loadTargets reads a targets file: a JSON list (or {"targets": [...]}) of
// objects with "name", "tags" and any per-target flag by its name (VM tags
// as "vm-tags"). Flags given on the command line win over the file, the
// file wins over flag defaults. parse binds a fresh flag set for a target
// and parses the command line into it.
func loadTargets(path string, parse func() (*pflag.FlagSet, *deployOptions, error)) ([]deployTarget, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(data, &list); err != nil {
		var wrapped struct {
			Targets []map[string]json.RawMessage `json:"targets"`
		}
		if err2 := json.Unmarshal(data, &wrapped); err2 != nil || wrapped.Targets == nil {
			return nil, fmt.Errorf("%s: want a JSON list of targets: %v", path, err)
		}
		list = wrapped.Targets
	}
	var targets []deployTarget
	names := map[string]bool{}
	for i, obj := range list {
		fs, o, err := parse()
		if err != nil {
			return nil, err
		}
		t := deployTarget{opts: o}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			raw := obj[k]
			switch k {
			case "name":
				if err := json.Unmarshal(raw, &t.name); err != nil {
					return nil, fmt.Errorf("%s: target %d: name: %v", path, i+1, err)
				}
				continue
			case "tags":
				if err := json.Unmarshal(raw, &t.tags); err != nil {
					return nil, fmt.Errorf("%s: target %d: tags: want a list of strings", path, i+1)
				}
				continue
			case "vm-tags":
				k = "tags"
			}
			f := fs.Lookup(k)
			if f == nil || globalDeployFlags[k] {
				return nil, fmt.Errorf("%s: target %d: unknown key %q", path, i+1, k)
			}
			if fs.Changed(k) {
				continue // the command line wins
			}
			v, err := flagValue(raw)
			if err != nil {
				return nil, fmt.Errorf("%s: target %d: %s: %v", path, i+1, k, err)
			}
			if err := fs.Set(k, v); err != nil {
				return nil, fmt.Errorf("%s: target %d: %s: %v", path, i+1, k, err)
			}
		}
		if t.name == "" {
			t.name = fmt.Sprintf("target%d", i+1)
		}
		if names[t.name] {
			return nil, fmt.Errorf("%s: two targets are named %q", path, t.name)
		}
		names[t.name] = true
		targets = append(targets, t)
	}
	return targets, nil
}

// flagValue turns a JSON value into the string pflag parses: strings as
// they are, numbers and booleans in JSON form, lists joined by commas.
func flagValue(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return strings.Join(list, ","), nil
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), nil
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return fmt.Sprint(b), nil
	}
	return "", fmt.Errorf("want a string, number, boolean or list of strings, got %s", raw)
}

// selectTargets keeps the targets named by --target or tagged by --tag;
// with neither, all of them.
func selectTargets(all []deployTarget, names, tags []string) ([]deployTarget, error) {
	if len(names) == 0 && len(tags) == 0 {
		return all, nil
	}
	var out []deployTarget
	for _, t := range all {
		picked := slices.Contains(names, t.name)
		for _, tag := range tags {
			picked = picked || slices.Contains(t.tags, tag)
		}
		if picked {
			out = append(out, t)
		}
	}
	for _, n := range names {
		if !slices.ContainsFunc(all, func(t deployTarget) bool { return t.name == n }) {
			return nil, fmt.Errorf("no target named %q", n)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no target has tag %s", strings.Join(tags, " or "))
	}
	return out, nil
}
