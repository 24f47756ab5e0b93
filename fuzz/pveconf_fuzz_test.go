package fuzz

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/vmatool/vmatool/internal/pveconf"
)

var (
	// configLine is one "key: value" line as qemu-server's parse_vm_config
	// and restore_update_config_line read it, with the value one word.
	configLine = regexp.MustCompile(`^([a-z][a-z0-9_-]*): (\S+)$`)
	mapLine    = regexp.MustCompile(`^#qmdump#map:([a-z]+[0-9]+):([!-9;-~]+):([a-zA-Z0-9._-]+):([a-z0-9]+):$`)
)

// FuzzGenerate hands Generate arbitrary values for every string setting a
// caller passes on from flags: a net device, a VM name, tags, a storage id,
// an OS type and a drive key. Whatever it accepts must be a config whose
// every line is one key: value (or a map line) with each key once, so no
// value can add a line or a key of its own; whatever it refuses must be
// an *OptionError on one line. A net device it accepts must print back
// to itself.
func FuzzGenerate(f *testing.F) {
	f.Add("net1=virtio,bridge=vmbr0,tag=20,firewall=1", "web-1", "nixos;web", "local-lvm", "l26", "scsi0")
	f.Add("e1000=BC:24:11:00:00:01,bridge=vmbr1,trunks=10;20-30", "a.b", "x", "tank", "other", "virtio15")
	f.Add("virtio\nhookscript: local:snippets/x", "x\nbios: ovmf", "a;b", "a:b", "l26\n", "efidisk0")
	f.Fuzz(func(t *testing.T, net, name, tags, storage, osType, key string) {
		o := pveconf.VMOptions{Net: net, Name: name, Tags: strings.Split(tags, ";"), OSType: osType,
			BIOS: "ovmf", TPM: true, CloudInit: true, Storage: storage}
		drives := []pveconf.Drive{{Key: key, Storage: storage, Size: 1 << 20}}
		g, err := pveconf.Generate(120, o, drives)
		if err != nil {
			var oe *pveconf.OptionError
			if !errors.As(err, &oe) || !errors.Is(err, pveconf.ErrInvalid) {
				t.Fatalf("refusal %v is no *OptionError", err)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error %q spans lines", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSuffix(string(g.Config), "\n"), "\n") {
			if mapLine.MatchString(line) {
				continue
			}
			m := configLine.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("line %q of\n%s", line, g.Config)
			}
			if seen[m[1]] {
				t.Fatalf("key %s twice in\n%s", m[1], g.Config)
			}
			seen[m[1]] = true
		}
		for _, s := range g.PostRestore {
			if strings.ContainsAny(s.Value, " \t\r\n'\"\\") || !configLine.MatchString(s.Key+": "+s.Value) {
				t.Fatalf("post-restore %q=%q", s.Key, s.Value)
			}
		}
		n, err := pveconf.ParseNet(net)
		if err != nil {
			t.Fatalf("Generate took net %q that ParseNet refuses: %v", net, err)
		}
		again, err := pveconf.ParseNet(n.String())
		if err != nil || again.String() != n.String() {
			t.Fatalf("net %q prints as %q, which reads back as %q, %v", net, n.String(), again.String(), err)
		}
	})
}
