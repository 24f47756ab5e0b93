package pveconf

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/generate/*.golden from Generate's output")

func drive(key, storage string, size int64) Drive {
	return Drive{Key: key, DevName: DevName(key), Storage: storage, Format: "raw", Size: size}
}

var (
	root8G   = drive("scsi0", "local-lvm", 8<<30)
	vars4M   = drive("efidisk0", "local-lvm", efiVars4M)
	vars2M   = drive("efidisk0", "local-lvm", efiVars2M)
	tpmState = drive("tpmstate0", "local-lvm", 4<<20)
	// threeBuses are disks on the three buses a NixOS image set may use.
	threeBuses = []Drive{root8G, drive("virtio1", "local-lvm", 20<<30), drive("sata2", "local-lvm", 512<<20)}
)

// generateCases are the golden tests: testdata/generate/NAME.golden holds
// the config and the post-restore settings.
var generateCases = []struct {
	name   string
	vmid   int
	o      VMOptions
	drives []Drive
}{
	{"defaults", 100, VMOptions{}, []Drive{drive("scsi0", "local-lvm", 136<<10)}},
	{"serial", 100, VMOptions{Serial: true}, []Drive{root8G}},
	{"settings", 120, VMOptions{Name: "web-1.example", Memory: 4096, Cores: 4, Agent: true, Serial: true,
		Tags: []string{"nixos", "web"}, OSType: "other"}, []Drive{drive("virtio0", "ceph", 8<<30)}},
	{"ovmf-creates-efidisk", 120, VMOptions{BIOS: "ovmf"}, []Drive{root8G}},
	{"ovmf-efidisk-2m", 120, VMOptions{BIOS: "ovmf", EFIType: "2m"}, []Drive{root8G}},
	{"ovmf-secure-boot", 120, VMOptions{BIOS: "ovmf", PreEnrolledKeys: true}, []Drive{root8G}},
	{"ovmf-archived-efidisk-4m", 120, VMOptions{BIOS: "ovmf"}, []Drive{root8G, vars4M}},
	{"ovmf-archived-efidisk-2m", 120, VMOptions{BIOS: "ovmf"}, []Drive{root8G, vars2M}},
	{"efidisk-first", 120, VMOptions{BIOS: "ovmf"}, []Drive{vars4M, root8G}},
	{"tpm-creates", 120, VMOptions{TPM: true}, []Drive{root8G}},
	{"tpm-archived", 120, VMOptions{TPM: true}, []Drive{root8G, tpmState}},
	{"cloud-init", 120, VMOptions{CloudInit: true}, []Drive{root8G}},
	{"cloud-init-storage", 120, VMOptions{CloudInit: true, Storage: "nfs.store_2"}, []Drive{root8G}},
	{"three-buses", 130, VMOptions{}, threeBuses},
	{"net-string", 120, VMOptions{Net: "e1000=BC:24:11:00:00:01,bridge=vmbr1,tag=20,firewall=1"}, []Drive{root8G}},
	{"nets", 120, VMOptions{Nets: []Net{
		{Key: "net0", Bridge: "vmbr0", Tag: 20, Firewall: true},
		{Bridge: "vmbr1", MACAddr: "bc:24:11:aa:bb:cc", Model: "e1000e"},
		{Key: "net5", Bridge: "vmbr2", Trunks: "10;20-30", MTU: 9000, Queues: 4, Rate: "12.5", LinkDown: true},
		{Bridge: "vmbr3"},
	}}, []Drive{root8G}},
	{"no-drives", 140, VMOptions{CloudInit: true, BIOS: "ovmf", TPM: true}, nil},
	{"everything", 150, VMOptions{Name: "db", Memory: 8192, Cores: 8, Agent: true, Serial: true, Tags: []string{"db"},
		BIOS: "ovmf", TPM: true, CloudInit: true, Storage: "tank",
		Nets: []Net{{Bridge: "vmbr0", Tag: 20}, {Bridge: "vmbr0", Tag: 30, MACAddr: "02:00:00:00:00:01"}}},
		append(threeBuses[:len(threeBuses):len(threeBuses)], vars4M)},
}

func golden(g *Generated) string {
	var b strings.Builder
	b.WriteString("-- qemu-server.conf --\n")
	b.Write(g.Config)
	b.WriteString("-- post-restore --\n")
	for _, s := range g.PostRestore {
		b.WriteString(s.Key + ": " + s.Value + "\n")
	}
	return b.String()
}

func TestGenerate(t *testing.T) {
	for _, tc := range generateCases {
		t.Run(tc.name, func(t *testing.T) {
			g, err := Generate(tc.vmid, tc.o, tc.drives)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "generate", tc.name+".golden")
			got := golden(g)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("got\n%s\nwant (%s)\n%s", got, path, want)
			}
			checkRestorable(t, g, tc.drives)
		})
	}
}

var (
	driveLine = regexp.MustCompile(`^((ide|scsi|virtio|sata|efidisk|tpmstate)\d+):\s*(\S+)\s*$`)
	cloudInit = regexp.MustCompile(`^((ide|sata|scsi)\d+): ([^,:]+):cloudinit,`)
)

// checkRestorable reads a generated config as qemu-server's
// restore_vma_archive does (src/PVE/QemuServer.pm): a map line must name a
// device the archive holds and each device needs one; a drive line is
// rewritten only if a map line or, as a cloud-init drive
// (parse_backup_hints), a new volume stands for it, else kept as it is. So
// every drive line must be one of those: anything else would name a
// volume nobody made. A disk left to Proxmox to create must be in
// PostRestore instead, as STORAGE:SIZE.
func checkRestorable(t *testing.T, g *Generated, drives []Drive) {
	t.Helper()
	devices := map[string]bool{}
	for _, d := range drives {
		devices[d.DevName] = true
	}
	mapped := map[string]bool{}
	lines := strings.Split(strings.TrimSuffix(string(g.Config), "\n"), "\n")
	for _, l := range lines {
		if m := mapLine.FindStringSubmatch(l); m != nil {
			if !devices[m[2]] {
				t.Errorf("%q maps a device the archive does not hold", l)
			}
			if mapped[m[1]] {
				t.Errorf("%s mapped twice", m[1])
			}
			mapped[m[1]] = true
			delete(devices, m[2])
		}
	}
	for d := range devices {
		t.Errorf("device %s has no map line: qmrestore refuses the archive", d)
	}
	for _, l := range lines {
		if strings.ContainsAny(l, "\r") || (!strings.HasPrefix(l, "#qmdump#map:") && !regexp.MustCompile(`^[a-z0-9_-]+: \S+$`).MatchString(l)) {
			t.Errorf("line %q is not one key: value", l)
		}
		m := driveLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		if !mapped[m[1]] && !cloudInit.MatchString(l) {
			t.Errorf("%q: a restore would keep it as it is, naming no volume", l)
		}
		delete(mapped, m[1])
	}
	for k := range mapped {
		t.Errorf("%s is mapped but has no drive line: restored, attached nowhere", k)
	}
	newDisk := regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9._-]*[a-zA-Z0-9]:1(,[a-z-]+=[a-z0-9.]+)*$`)
	for _, s := range g.PostRestore {
		if (s.Key == "efidisk0" || s.Key == "tpmstate0") && !newDisk.MatchString(s.Value) {
			t.Errorf("post-restore %s=%s is not STORAGE:1,...", s.Key, s.Value)
		}
		if strings.Contains("\n"+string(g.Config), "\n"+s.Key+": ") == (s.Key == "efidisk0" || s.Key == "tpmstate0") {
			t.Errorf("post-restore %s: a created disk must not be in the config, a net must", s.Key)
		}
	}
}

func TestGenerateRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		o      VMOptions
		drives []Drive
		option string // the OptionError's Option
	}{
		{"name with a space", VMOptions{Name: "a b"}, nil, "name"},
		{"name injects a line", VMOptions{Name: "x\nbios: y"}, nil, "name"},
		{"name with an empty label", VMOptions{Name: "a..b"}, nil, "name"},
		{"memory below 16", VMOptions{Memory: 8}, nil, "memory"},
		{"negative memory", VMOptions{Memory: -1}, nil, "memory"},
		{"negative cores", VMOptions{Cores: -2}, nil, "cores"},
		{"bios", VMOptions{BIOS: "uefi"}, nil, "bios"},
		{"ostype", VMOptions{OSType: "l26\nhookscript: local:snippets/x"}, nil, "ostype"},
		{"tag with ;", VMOptions{Tags: []string{"a;b"}}, nil, "tags"},
		{"tag starting with -", VMOptions{Tags: []string{"-a"}}, nil, "tags"},
		{"storage with :", VMOptions{Storage: "a:b"}, nil, "storage"},
		{"storage of one letter", VMOptions{Storage: "a"}, nil, "storage"},
		{"storage ending in -", VMOptions{Storage: "local-"}, nil, "storage"},
		{"efitype", VMOptions{BIOS: "ovmf", EFIType: "8m"}, nil, "efidisk0"},
		{"efitype without ovmf", VMOptions{EFIType: "4m"}, nil, "efidisk0"},
		{"keys without ovmf", VMOptions{PreEnrolledKeys: true}, nil, "efidisk0"},
		{"keys with 2m", VMOptions{BIOS: "ovmf", EFIType: "2m", PreEnrolledKeys: true}, nil, "efidisk0"},
		{"archived efidisk too small for 4m", VMOptions{BIOS: "ovmf", EFIType: "4m"}, []Drive{root8G, vars2M}, "efidisk0"},
		{"archived efidisk too small for 2m", VMOptions{BIOS: "ovmf"}, []Drive{root8G, drive("efidisk0", "local-lvm", 64<<10)}, "efidisk0"},
		{"net injects a line", VMOptions{Net: "virtio\nhookscript: x"}, nil, "net"},
		{"net with a space", VMOptions{Net: "virtio, bridge=vmbr0"}, nil, "net"},
		{"net model", VMOptions{Net: "virtio2,bridge=vmbr0"}, nil, "net"},
		{"net tag 0", VMOptions{Net: "virtio,tag=0"}, nil, "net"},
		{"net tag 4095", VMOptions{Nets: []Net{{Key: "net1", Tag: 4095}}}, nil, "net1"},
		{"net key 32", VMOptions{Nets: []Net{{Key: "net32"}}}, nil, "net"},
		{"net key with a line", VMOptions{Nets: []Net{{Key: "net1\nbios: ovmf"}}}, nil, "net"},
		{"net key twice", VMOptions{Nets: []Net{{Key: "net1"}, {Key: "net1"}}}, nil, "net1"},
		{"33 nets", VMOptions{Nets: make([]Net, 33)}, nil, "net"},
		{"multicast mac", VMOptions{Nets: []Net{{MACAddr: "01:00:5e:00:00:01"}}}, nil, "net0"},
		{"bridge with :", VMOptions{Nets: []Net{{Bridge: "vmbr0:x"}}}, nil, "net0"},
		{"bridge with a line", VMOptions{Nets: []Net{{Bridge: "vmbr0\nbios: ovmf"}}}, nil, "net0"},
		{"trunks", VMOptions{Nets: []Net{{Trunks: "10,20"}}}, nil, "net0"},
		{"mtu", VMOptions{Nets: []Net{{MTU: 65521}}}, nil, "net0"},
		{"queues", VMOptions{Nets: []Net{{Queues: 65}}}, nil, "net0"},
		{"rate", VMOptions{Nets: []Net{{Rate: "-1"}}}, nil, "net0"},
		{"unknown model in Nets", VMOptions{Nets: []Net{{Key: "net3", Model: "virtio\n"}}}, nil, "net3"},
		{"drive key", VMOptions{}, []Drive{drive("scsi31", "local-lvm", 1<<20)}, "disk"},
		{"drive key with a line", VMOptions{}, []Drive{{Key: "scsi0\r", Storage: "x1", Size: 1 << 20}}, "disk"},
		{"drive key twice", VMOptions{}, []Drive{root8G, root8G}, "scsi0"},
		{"drive storage", VMOptions{}, []Drive{drive("scsi0", "local\nbios: ovmf", 1<<20)}, "storage"},
		{"empty drive storage", VMOptions{}, []Drive{drive("scsi0", "", 1<<20)}, "storage"},
		{"device name with :", VMOptions{}, []Drive{{Key: "scsi0", DevName: "drive:scsi0", Storage: "x1", Size: 1 << 20}}, "scsi0"},
		{"drive format", VMOptions{}, []Drive{{Key: "scsi0", Storage: "x1", Format: "raw:", Size: 1 << 20}}, "scsi0"},
		{"negative size", VMOptions{}, []Drive{{Key: "scsi0", Storage: "x1", Size: -512}}, "scsi0"},
		{"cloud-init on a disk's slot", VMOptions{CloudInit: true}, []Drive{root8G, drive("ide2", "local-lvm", 1<<20)}, "ide2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := Generate(120, tc.o, tc.drives)
			var oe *OptionError
			if !errors.As(err, &oe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Generate = %v, %v; want an *OptionError", g, err)
			}
			if oe.Option != tc.option {
				t.Errorf("error %q names %q, want %q", err, oe.Option, tc.option)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Errorf("error %q spans lines", err)
			}
			if len(tc.drives) == 0 && tc.o.Validate() == nil {
				t.Errorf("Validate passed what Generate refuses: %v", err)
			}
		})
	}
	if _, err := Generate(0, VMOptions{}, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("vmid 0: %v", err)
	}
}

func TestParseNet(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Net
		str  string
	}{
		{"virtio,bridge=vmbr0", Net{Model: "virtio", Bridge: "vmbr0"}, "virtio,bridge=vmbr0"},
		{"net3=virtio,bridge=vmbr0,tag=20", Net{Key: "net3", Model: "virtio", Bridge: "vmbr0", Tag: 20}, "virtio,bridge=vmbr0,tag=20"},
		// Proxmox's own spelling, MODEL=MAC, and the long one.
		{"e1000=BC:24:11:2A:3B:4C,bridge=vmbr1,firewall=1", Net{Model: "e1000", MACAddr: "BC:24:11:2A:3B:4C", Bridge: "vmbr1", Firewall: true},
			"e1000=BC:24:11:2A:3B:4C,bridge=vmbr1,firewall=1"},
		{"tag=5,macaddr=02:00:00:00:00:01,model=vmxnet3,firewall=yes,link_down=on", Net{Model: "vmxnet3", MACAddr: "02:00:00:00:00:01", Tag: 5, Firewall: true, LinkDown: true},
			"vmxnet3=02:00:00:00:00:01,firewall=1,link_down=1,tag=5"},
		{"bridge=vmbr0,firewall=0", Net{Bridge: "vmbr0"}, "virtio,bridge=vmbr0"},
		{"virtio,,bridge=vmbr0,mtu=1,queues=64,rate=0.5,trunks=1-4094", Net{Model: "virtio", Bridge: "vmbr0", MTU: 1, Queues: 64, Rate: "0.5", Trunks: "1-4094"},
			"virtio,bridge=vmbr0,mtu=1,queues=64,rate=0.5,trunks=1-4094"},
		{"net31=ne2k_pci", Net{Key: "net31", Model: "ne2k_pci"}, "ne2k_pci"},
	} {
		n, err := ParseNet(tc.in)
		if err != nil || !reflect.DeepEqual(n, tc.want) || n.String() != tc.str {
			t.Errorf("ParseNet(%q) = %+v (%q), %v; want %+v (%q)", tc.in, n, n.String(), err, tc.want, tc.str)
		}
		if again, err := ParseNet(n.String()); err != nil || again.String() != n.String() {
			t.Errorf("ParseNet(%q) again = %q, %v", n.String(), again.String(), err)
		}
	}
	for _, bad := range []string{"virtio,bridge=vmbr0,bridge=vmbr1", "virtio,e1000", "virtio=02:00:00:00:00:01,macaddr=02:00:00:00:00:02",
		"virtio,tag=abc", "virtio,tag=4095", "virtio,firewall=maybe", "virtio,hookscript=local:snippets/x", "net32=virtio",
		"net01=virtio", "netx=virtio", "virtio,bridge=vm br0", "virtio\r", "virtio,macaddr=02:00:00:00:00", "virtio,queues=-1",
		"virtio,rate=1e3", "virtio,trunks=10;"} {
		if n, err := ParseNet(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseNet(%q) = %+v, %v; want ErrInvalid", bad, n, err)
		}
	}
}

func TestQMSetArgs(t *testing.T) {
	g, err := Generate(150, VMOptions{BIOS: "ovmf", TPM: true, Nets: []Net{{Bridge: "vmbr0", MACAddr: "02:00:00:00:00:01"}}}, []Drive{root8G})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"qm", "set", "150", "--efidisk0", "local-lvm:1,efitype=4m,pre-enrolled-keys=0", "--tpmstate0", "local-lvm:1,version=v2.0"}
	if got := g.QMSetArgs(150); !reflect.DeepEqual(got, want) {
		t.Errorf("QMSetArgs = %q, want %q", got, want)
	}
	g, err = Generate(150, VMOptions{Net: "virtio=02:00:00:00:00:01,bridge=vmbr0"}, []Drive{root8G})
	if err != nil || g.PostRestore != nil || g.QMSetArgs(150) != nil {
		t.Errorf("nothing to set: %+v, %v", g, err)
	}
}
