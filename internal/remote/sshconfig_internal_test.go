package remote

import (
	"slices"
	"strings"
	"testing"
)

func TestSplitArgs(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{in: "", want: nil},
		{in: "a", want: []string{"a"}},
		{in: "  a \t b  ", want: []string{"a", "b"}},
		{in: `"a b" c`, want: []string{"a b", "c"}},
		{in: `'a "b"' c`, want: []string{`a "b"`, "c"}},
		{in: `a\ b`, want: []string{"a b"}},
		{in: `"a\"b"`, want: []string{`a"b`}},
		{in: `"a\ b"`, want: []string{`a\ b`}},
		{in: `a\\b`, want: []string{`a\b`}},
		{in: `a\xb`, want: []string{`a\xb`}},
		{in: `""`, want: []string{""}},
		{in: `"open`, err: true},
	}
	for _, tt := range tests {
		got, err := splitArgs(tt.in)
		if (err != nil) != tt.err || !slices.Equal(got, tt.want) {
			t.Errorf("splitArgs(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "anything", true},
		{"pve?", "pve1", true},
		{"pve?", "pve", false},
		{"pve?", "pve10", false},
		{"*.lab", "a.lab", true},
		{"*.lab", "a.lab.example", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"10.0.?.*", "10.0.3.17", true},
		{"Host", "host", false},
	}
	for _, tt := range tests {
		if got := globMatch(tt.pattern, tt.s); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v", tt.pattern, tt.s, got)
		}
	}
}

func TestExpandTokens(t *testing.T) {
	tokens := map[byte]string{'h': "node", 'p': "22"}
	for in, want := range map[string]string{
		"plain":        "plain",
		"%h:%p":        "node:22",
		"100%%":        "100%",
		"%%h":          "%h",
		"a/%h/%h.pub":  "a/node/node.pub",
		"%C":           "error: token %C is not supported here",
		"end%":         "error: % at the end",
		"${HOME}/.ssh": "error: environment variables (${...}) are not supported",
	} {
		got, err := expandTokens(in, tokens)
		if err != nil {
			got = "error: " + err.Error()
		}
		if got != want {
			t.Errorf("expandTokens(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHideIncludes(t *testing.T) {
	in := "Include a\n  include=b\n\tINCLUDE  c d\n#Include e\nIncludeX f\nHost x\n  Include g # comment\r\n"
	want := "vmatool-include a\n  vmatool-include=b\n\tvmatool-include  c d\n#Include e\nIncludeX f\nHost x\n  vmatool-include g # comment\r\n"
	if got := string(hideIncludes([]byte(in))); got != want {
		t.Errorf("hideIncludes:\n%q\nwant\n%q", got, want)
	}
	if !strings.Contains(string(hideIncludes([]byte("Include"))), includeKeyword) {
		t.Errorf("a bare Include at the end of the file is missed")
	}
}
