package pve

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testSecret = "5f3c1a2b-aaaa-bbbb-cccc-0123456789ab"

func TestParseToken(t *testing.T) {
	tests := []struct {
		in   string
		want Token
		ok   bool
	}{
		{"root@pam!vmatool=" + testSecret, Token{"root", "pam", "vmatool", testSecret}, true},
		{"PVEAPIToken=deploy@pve!ci=" + testSecret, Token{"deploy", "pve", "ci", testSecret}, true},
		{"  ops@example.com@ldap!t1=" + testSecret + "\n", Token{"ops@example.com", "ldap", "t1", testSecret}, true},
		{"root@pam!vmatool", Token{}, false},
		{"root@pam=" + testSecret, Token{}, false},
		{"rootpam!x=" + testSecret, Token{}, false},
		{"@pam!x=" + testSecret, Token{}, false},
		{"root@!x=" + testSecret, Token{}, false},
		{"root@pam!=" + testSecret, Token{}, false},
		{"root@pam!x=", Token{}, false},
		{"", Token{}, false},
	}
	for _, tt := range tests {
		got, err := ParseToken(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseToken(%q) = %#v, %v", tt.in, got, err)
		}
		if err != nil && strings.Contains(err.Error(), testSecret) {
			t.Errorf("error quotes the secret: %v", err)
		}
	}
}

// TestTokenHidesSecret prints tokens and clients every way fmt and json
// can, and looks for the secret.
func TestTokenHidesSecret(t *testing.T) {
	tok := Token{"root", "pam", "vmatool", testSecret}
	c, err := New("https://pve.example:8006", tok)
	if err != nil {
		t.Fatal(err)
	}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
		outs = append(outs, fmt.Sprintf(verb, tok), fmt.Sprintf(verb, &tok), fmt.Sprintf(verb, c), fmt.Sprintf(verb, *c),
			fmt.Sprintf(verb, []any{tok, c}), fmt.Sprintf(verb, struct{ T Token }{tok}))
	}
	j, _ := json.Marshal(tok)
	jc, _ := json.Marshal(c)
	outs = append(outs, tok.String(), tok.GoString(), c.String(), string(j), string(jc))
	for _, o := range outs {
		if strings.Contains(o, testSecret) || strings.Contains(o, "5f3c1a2b") {
			t.Fatalf("secret printed: %s", o)
		}
	}
	if got := fmt.Sprint(tok); got != "root@pam!vmatool" {
		t.Errorf("Sprint(token) = %q", got)
	}
}

func TestLoadToken(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "token")
	os.WriteFile(good, []byte("root@pam!vmatool="+testSecret+"\n"), 0o600)
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("just-a-secret-"+testSecret), 0o600)
	want := Token{"root", "pam", "vmatool", testSecret}
	tests := []struct {
		name, file, env string
		ok              bool
	}{
		{"file", good, "", true},
		{"file wins over the environment", good, "other@pve!x=y", true},
		{"environment", "", " root@pam!vmatool=" + testSecret + " ", true},
		{"neither", "", "", false},
		{"missing file", filepath.Join(dir, "nope"), "", false},
		{"malformed file", bad, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadToken(tt.file, tt.env)
			if (err == nil) != tt.ok || (tt.ok && got != want) {
				t.Fatalf("LoadToken = %#v, %v", got, err)
			}
			if err != nil && strings.Contains(err.Error(), testSecret) {
				t.Errorf("error quotes the secret: %v", err)
			}
			if tt.name == "neither" && !errors.Is(err, ErrNoToken) {
				t.Errorf("err = %v, want ErrNoToken", err)
			}
		})
	}
}

func TestUPID(t *testing.T) {
	tests := []struct {
		in   string
		want UPID
	}{
		{"UPID:pve:0000A1B2:00C0FFEE:65A1B2C3:qmrestore:100:root@pam!vmatool:",
			UPID{Node: "pve", PID: 0xA1B2, PStart: 0xC0FFEE, Type: "qmrestore", ID: "100", User: "root@pam!vmatool"}},
		// pstart grows past 8 digits after 497 days of uptime; id may be empty.
		{"UPID:node-2:00001234:1234ABCDE:65A1B2C3:vzdump::root@pam:",
			UPID{Node: "node-2", PID: 0x1234, PStart: 0x1234ABCDE, Type: "vzdump", ID: "", User: "root@pam"}},
	}
	for _, tt := range tests {
		got, err := ParseUPID(tt.in)
		if err != nil {
			t.Fatalf("ParseUPID(%q): %v", tt.in, err)
		}
		if got.Node != tt.want.Node || got.PID != tt.want.PID || got.PStart != tt.want.PStart ||
			got.Type != tt.want.Type || got.ID != tt.want.ID || got.User != tt.want.User ||
			got.StartTime.Unix() != 0x65A1B2C3 {
			t.Errorf("ParseUPID(%q) = %+v", tt.in, got)
		}
		if got.String() != tt.in {
			t.Errorf("String() = %q", got.String())
		}
		got.raw = ""
		if got.String() != tt.in {
			t.Errorf("formatted = %q, want %q", got.String(), tt.in)
		}
	}
	for _, bad := range []string{
		"", "UPID:", "upid:pve:0000A1B2:00C0FFEE:65A1B2C3:qmrestore:100:root@pam:",
		"UPID:pve:0000A1B2:00C0FFEE:65A1B2C3:qmrestore:100:root@pam", // no trailing colon
		"UPID:pve:XYZ:00C0FFEE:65A1B2C3:qmrestore:100:root@pam:",
		"UPID::0000A1B2:00C0FFEE:65A1B2C3:qmrestore:100:root@pam:",
		"UPID:pve:0000A1B2:00C0FFEE:65A1B2C3::100:root@pam:",
		"UPID:pve:0000A1B2:00C0FFEE:65A1B2C3:qmrestore:100:root@pam:extra:",
	} {
		if _, err := ParseUPID(bad); !errors.Is(err, ErrBadUPID) {
			t.Errorf("ParseUPID(%q) error = %v, want ErrBadUPID", bad, err)
		}
	}
	if !(UPID{}).IsZero() {
		t.Error("zero UPID is not IsZero")
	}
}

func TestParseFingerprint(t *testing.T) {
	const colon = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"
	want, _ := parseFingerprint(colon)
	for _, in := range []string{
		strings.ToLower(colon),
		strings.ReplaceAll(colon, ":", ""),
		"sha256:" + colon,
		"SHA256 " + colon,
		" " + colon + "\n",
	} {
		got, err := parseFingerprint(in)
		if err != nil || string(got) != string(want) {
			t.Errorf("parseFingerprint(%q) = %x, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "AB:CD", colon + ":00", strings.Replace(colon, "AB", "GG", 1)} {
		if _, err := parseFingerprint(bad); err == nil {
			t.Errorf("parseFingerprint(%q) accepted", bad)
		}
	}
}

func TestParseBaseURL(t *testing.T) {
	for in, want := range map[string]string{
		"pve.example":                         "https://pve.example:8006/api2/json",
		"pve.example:443":                     "https://pve.example:443/api2/json",
		"10.0.0.5":                            "https://10.0.0.5:8006/api2/json",
		"[fd00::5]":                           "https://[fd00::5]:8006/api2/json",
		"https://pve.example:8006":            "https://pve.example:8006/api2/json",
		"https://pve.example:8006/":           "https://pve.example:8006/api2/json",
		"https://pve.example/api2/json":       "https://pve.example/api2/json",
		"https://proxy.example/pve/api2/json": "https://proxy.example/pve/api2/json",
	} {
		u, err := parseBaseURL(in)
		if err != nil || u.String() != want {
			t.Errorf("parseBaseURL(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	for _, bad := range []string{"ftp://x", "https://"} {
		if _, err := parseBaseURL(bad); err == nil {
			t.Errorf("parseBaseURL(%q) accepted", bad)
		}
	}
}
