package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/vmatool/vmatool/internal/deploy"
)

// loadTargets reads a targets file: a JSON list of deploy.Target objects,
// or an object whose keys are the targets' names (what `nix eval --json
// .#deploy.targets` prints for an attribute set), either also wrapped as
// {"targets": ...}. Each target is decoded over the defaults with
// unknown keys refused; an error names the key's path, as
// targets.web1.strage or targets[0].strage. A "name" inside an object's
// member must agree with its key. apply then puts the command line's
// per-target flags over each, so that flags given on the command line win.
func loadTargets(path string, apply func(*deploy.Target) error) ([]deploy.Target, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseTargets(path, data, apply)
}

// parseTargets is loadTargets on the file's bytes; path names it in
// errors.
func parseTargets(path string, data []byte, apply func(*deploy.Target) error) ([]deploy.Target, error) {
	entries, err := targetEntries(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%s: no targets", path)
	}
	targets := make([]deploy.Target, 0, len(entries))
	for i, e := range entries {
		t, err := decodeTarget(e)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
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

// targetEntry is one target of a file, as written, with its path.
type targetEntry struct {
	path string
	name string // the object's key; "" in a list
	raw  json.RawMessage
}

// targetEntries splits a targets file into its targets, in file order.
func targetEntries(data []byte) ([]targetEntry, error) {
	// Syntax first, over the whole file, so that an offset is the file's.
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("targets: %v", jsonMessage(err))
	}
	switch firstByte(data) {
	case '[':
		var list []json.RawMessage
		if err := json.Unmarshal(data, &list); err != nil {
			return nil, fmt.Errorf("targets: %v", jsonMessage(err))
		}
		out := make([]targetEntry, len(list))
		for i, raw := range list {
			out[i] = targetEntry{path: fmt.Sprintf("targets[%d]", i), raw: raw}
		}
		return out, nil
	case '{':
		members, err := objectMembers(data, "targets")
		if err != nil {
			return nil, err
		}
		// {"targets": [...]} or {"targets": {NAME: {...}, ...}} wraps the
		// targets; a target named "targets" has no object or list values.
		if len(members) == 1 && members[0].name == "targets" && isWrapped(members[0].raw) {
			return targetEntries(members[0].raw)
		}
		return members, nil
	default:
		return nil, errors.New("targets: want a JSON list of targets, or an object of targets by name")
	}
}

// isWrapped says a "targets" member holds targets: a list, or an object
// whose members are all objects (a target's values never are).
func isWrapped(raw json.RawMessage) bool {
	switch firstByte(raw) {
	case '[':
		return true
	case '{':
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil || len(m) == 0 {
			return false
		}
		for _, v := range m {
			if firstByte(v) != '{' {
				return false
			}
		}
		return true
	}
	return false
}

func firstByte(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// objectMembers reads a JSON object's members in file order (JSON objects
// decoded into a map lose it), refusing a key given twice; prefix is the
// path of the object.
func objectMembers(data []byte, prefix string) ([]targetEntry, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%s: %v", prefix, jsonMessage(err))
	}
	var out []targetEntry
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%s: %v", prefix, jsonMessage(err))
		}
		key := tok.(string) // object keys are strings, or Token fails
		p := keyPath(prefix, key)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%s: %v", p, jsonMessage(err))
		}
		if seen[key] {
			return nil, fmt.Errorf("%s: given twice", p)
		}
		seen[key] = true
		out = append(out, targetEntry{path: p, name: key, raw: raw})
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%s: %v", prefix, jsonMessage(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%s: more after the object ends", prefix)
	}
	return out, nil
}

// bareKeyRE is a Nix attribute name that needs no quotes.
var bareKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_'-]*$`)

// keyPath appends key to path as Nix writes attribute paths: bare, or
// quoted when it holds a dot or the like.
func keyPath(path, key string) string {
	if bareKeyRE.MatchString(key) {
		return path + "." + key
	}
	return path + "." + strconv.Quote(key)
}

// decodeTarget decodes one target over the defaults, member by member,
// so that an error names the member's path.
func decodeTarget(e targetEntry) (deploy.Target, error) {
	t := deploy.DefaultTarget()
	if firstByte(e.raw) != '{' {
		return t, fmt.Errorf("%s: want an object of target settings", e.path)
	}
	members, err := objectMembers(e.raw, e.path)
	if err != nil {
		return t, err
	}
	for _, m := range members {
		one, _ := json.Marshal(map[string]json.RawMessage{m.name: m.raw})
		dec := json.NewDecoder(bytes.NewReader(one))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&t); err != nil {
			var te *json.UnmarshalTypeError
			switch {
			case strings.HasPrefix(err.Error(), "json: unknown field "):
				return t, fmt.Errorf("%s: unknown key", m.path)
			case errors.As(err, &te):
				return t, fmt.Errorf("%s: want %s, not a JSON %s", m.path, goTypeName(te.Type.String()), te.Value)
			}
			return t, fmt.Errorf("%s: %v", m.path, jsonMessage(err))
		}
	}
	if e.name != "" {
		if t.Name != "" && t.Name != e.name {
			return t, fmt.Errorf("%s.name: %q does not agree with the key %q", e.path, t.Name, e.name)
		}
		t.Name = e.name
	}
	return t, nil
}

// goTypeName says what a Go type takes, for a file's author.
func goTypeName(t string) string {
	switch t {
	case "int", "int64", "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "string", "deploy.Via":
		return "a string"
	}
	return t
}

// jsonMessage is a decoding error without its "json: " prefix, with the
// offset of a syntax error: that of the byte that is wrong, counted from
// 0 (Go's Offset counts the bytes read, that one included).
func jsonMessage(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("at offset %d: %s", max(se.Offset-1, 0), se.Error())
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// onSelection splits --on values, deploy-rs and colmena style: each a
// comma-separated list of target names and @tags.
func onSelection(on []string) (names, tags []string, err error) {
	for _, v := range on {
		for _, item := range strings.Split(v, ",") {
			item = strings.TrimSpace(item)
			switch {
			case item == "" || item == "@":
				return nil, nil, fmt.Errorf("--on %q: want NAME or @TAG, comma-separated", v)
			case strings.HasPrefix(item, "@"):
				tags = append(tags, item[1:])
			default:
				names = append(names, item)
			}
		}
	}
	return names, tags, nil
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
