package deploy_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmatool/vmatool/internal/deploy"
)

// TestValidate refuses what Proxmox would refuse, and what does not go
// together, before anything connects.
func TestValidate(t *testing.T) {
	ok := deploy.DefaultTarget()
	ok.Host, ok.VMID = "root@pve1:2222", 120
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid target: %v", err)
	}
	for _, tc := range []struct {
		name string
		set  func(*deploy.Target)
		want string
	}{
		{"vmid below 100", func(t *deploy.Target) { t.VMID = 99 }, "VM ID 99"},
		{"vmid above 999999999", func(t *deploy.Target) { t.VMID = 1000000000 }, "VM ID 1000000000"},
		{"storage with a semicolon", func(t *deploy.Target) { t.Storage = "x;reboot" }, `storage "x;reboot"`},
		{"storage of one letter", func(t *deploy.Target) { t.Storage = "x" }, `storage "x"`},
		{"storage ending in a dash", func(t *deploy.Target) { t.Storage = "local-" }, `storage "local-"`},
		{"storage starting with a digit", func(t *deploy.Target) { t.Storage = "1local" }, `storage "1local"`},
		{"import storage", func(t *deploy.Target) { t.ImportStorage = "a b" }, `import-storage "a b"`},
		{"node with a dot", func(t *deploy.Target) { t.Node = "pve1.example.org" }, "node name"},
		{"node ending in a dash", func(t *deploy.Target) { t.Node = "pve-" }, "node name"},
		{"bad port", func(t *deploy.Target) { t.Host = "pve1:99999" }, "bad port"},
		{"host with a slash", func(t *deploy.Target) { t.Host = "pve/1" }, "want [user@]host[:port]"},
		{"relative dump dir", func(t *deploy.Target) { t.DumpDir = "dump" }, "absolute path"},
		{"unknown via", func(t *deploy.Target) { t.Via = "ftp" }, `via "ftp": want auto, api, import, ssh, ssh-stream`},
		{"start and template", func(t *deploy.Target) { t.Start, t.Template = true, true }, "exclude each other"},
		{"keep with a stream", func(t *deploy.Target) { t.Via, t.KeepArchive = deploy.ViaSSHStream, true }, "leaves no archive"},
		{"keep with import", func(t *deploy.Target) { t.Via, t.KeepArchive = deploy.ViaImport, true }, "leaves no archive"},
		{"ssh without a host", func(t *deploy.Target) { t.Host, t.Via = "", deploy.ViaSSH }, "needs a host"},
		{"nothing to reach", func(t *deploy.Target) { t.Host = "" }, "give a host"},
		{"stream with restore api", func(t *deploy.Target) { t.Stream, t.Restore = true, "api" }, "does not go with restore api"},
		{"via against restore", func(t *deploy.Target) { t.Via, t.Restore = deploy.ViaImport, "ssh" }, "contradicts"},
		{"bad VM name", func(t *deploy.Target) { t.VMName = "web_1" }, "DNS name"},
		{"bad VM tag", func(t *deploy.Target) { t.VMTags = []string{"a b"} }, "tag"},
		{"level", func(t *deploy.Target) { t.Level = 23 }, "level 23"},
		{"wait for what", func(t *deploy.Target) { t.Wait = "ssh" }, `wait "ssh": want agent`},
		{"wait for a template", func(t *deploy.Target) { t.Wait, t.Template = deploy.WaitAgent, true }, "wait and template exclude each other"},
		{"wait no time", func(t *deploy.Target) { t.Wait, t.WaitTimeout = deploy.WaitAgent, 0 }, "wait-timeout 0s"},
		{"HA for a template", func(t *deploy.Target) { t.HA, t.Template = true, true }, "ha and template exclude each other"},
		{"HA group without HA", func(t *deploy.Target) { t.HAGroup = "prod" }, "ha-group prod: the group is for ha"},
		{"bad HA group", func(t *deploy.Target) { t.HA, t.HAGroup = true, "prod;x" }, `ha-group "prod;x" is not an HA group name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := ok
			tc.set(&tg)
			err := tg.Validate()
			if !errors.Is(err, deploy.ErrInvalidTarget) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
	// The older spellings still work.
	old := ok
	old.Stream = true
	if err := old.Validate(); err != nil {
		t.Errorf("stream: %v", err)
	}
	for _, id := range []string{"local", "local-lvm", "Local_ZFS.2", "ab"} {
		tg := ok
		tg.Storage = id
		if err := tg.Validate(); err != nil {
			t.Errorf("storage %q: %v", id, err)
		}
	}
}

// TestTargetJSON: a targets file entry decodes over the defaults, and
// unknown keys are refused by a strict decoder.
func TestTargetJSON(t *testing.T) {
	tg := deploy.DefaultTarget()
	dec := json.NewDecoder(strings.NewReader(`{"name": "web1", "host": "pve1", "vmid": 201, "via": "ssh-stream", "memory": 2048, "vm-tags": ["nixos"], "serial": false}`))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&tg); err != nil {
		t.Fatal(err)
	}
	if tg.Name != "web1" || tg.VMID != 201 || tg.Via != deploy.ViaSSHStream || tg.Memory != 2048 || tg.Serial || !tg.Agent || tg.Storage != "local-lvm" || tg.VMTags[0] != "nixos" {
		t.Errorf("%+v", tg)
	}
	// One string where a list goes, as older files had it.
	if err := json.Unmarshal([]byte(`{"identity": "/keys/id", "tags": ["web"]}`), &tg); err != nil || len(tg.Identity) != 1 || tg.Identity[0] != "/keys/id" || tg.Tags[0] != "web" {
		t.Errorf("%v %+v", err, tg)
	}
	if err := json.Unmarshal([]byte(`{"identity": 3}`), &tg); err == nil || !strings.Contains(err.Error(), "want a string or a list of strings") {
		t.Errorf("identity 3: %v", err)
	}
	// A duration as a string, or as seconds; JSON shows it as a string.
	for in, want := range map[string]time.Duration{`{"wait-timeout": "90s"}`: 90 * time.Second, `{"wait-timeout": 30}`: 30 * time.Second, `{"wait-timeout": 0.5}`: 500 * time.Millisecond} {
		if err := json.Unmarshal([]byte(in), &tg); err != nil || time.Duration(tg.WaitTimeout) != want {
			t.Errorf("%s: %v, %v", in, tg.WaitTimeout, err)
		}
	}
	if err := json.Unmarshal([]byte(`{"wait-timeout": "soon"}`), &tg); err == nil || !strings.Contains(err.Error(), `want a duration such as "5m"`) {
		t.Errorf("wait-timeout soon: %v", err)
	}
	if b, _ := json.Marshal(deploy.DefaultTarget()); !strings.Contains(string(b), `"wait-timeout":"5m0s"`) {
		t.Errorf("default target as JSON: %s", b)
	}
	dec = json.NewDecoder(strings.NewReader(`{"vmid": 201, "token": "x"}`))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&tg); err == nil || !strings.Contains(err.Error(), `"token"`) {
		t.Errorf("unknown key: %v", err)
	}
}

// TestPlan shows each path's steps and config without connecting.
func TestPlan(t *testing.T) {
	img, _ := rawImage(t, t.TempDir(), "nixos.raw", 1<<20, 31)
	src, err := deploy.OpenSource(img)
	if err != nil {
		t.Fatal(err)
	}
	var targets []deploy.Target
	for i, via := range []deploy.Via{deploy.ViaAuto, deploy.ViaSSH, deploy.ViaSSHStream, deploy.ViaAPI, deploy.ViaImport} {
		tg := deploy.DefaultTarget()
		tg.Name, tg.Host, tg.VMID, tg.Via, tg.Start = string(via), "root@pve.invalid", 100+i, via, true
		targets = append(targets, tg)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.Local)
	plan, err := deploy.NewPlan(src, targets, deploy.Options{Token: "root@pam!t=secret", Now: now, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	text := plan.String()
	for _, want := range []string{
		"auto: VM 100 on root@pve.invalid via ssh\n",
		"if SSH to root@pve.invalid fails (other than over its host key), --via import instead",
		"run qmrestore /var/lib/vz/dump/vzdump-qemu-101-2026_01_02-03_04_05.vma.zst 101 --storage local-lvm",
		"stream it over SSH into: zstd -dc | qmrestore - 102 --storage local-lvm",
		"restore local:backup/vzdump-qemu-103-2026_01_02-03_04_05.vma.zst through the API at https://pve.invalid:8006",
		"import: VM 104 on https://pve.invalid:8006 via import\n",
		"convert " + img + " into a compressed qcow2 file",
		"scsi0: local-lvm:0,import-from=local:import/vmatool-104-scsi0-20260102-030405.qcow2\n",
		"start VM 104 (the API) as a step of its own, and confirm it started",
		"#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("plan lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "secret") {
		t.Error("the plan shows the token")
	}
	b, err := json.Marshal(plan)
	if err != nil || strings.Contains(string(b), "secret") {
		t.Fatalf("%v %s", err, b)
	}
	var back deploy.Plan
	if err := json.Unmarshal(b, &back); err != nil || len(back.Targets) != 5 || back.Targets[4].Via != deploy.ViaImport || back.Targets[0].Fallback != deploy.ViaImport {
		t.Errorf("JSON plan %s", b)
	}

	// Refused before anything connects: an API path without a token,
	// two targets of one name.
	noToken := targets[3]
	if _, err := deploy.NewPlan(src, []deploy.Target{noToken}, deploy.Options{}); err == nil || !strings.Contains(err.Error(), "needs an API token") {
		t.Errorf("no token: %v", err)
	}
	if _, err := deploy.NewPlan(src, []deploy.Target{targets[1], targets[1]}, deploy.Options{}); err == nil || !strings.Contains(err.Error(), "two targets") {
		t.Errorf("same name: %v", err)
	}
	bad := targets[1]
	bad.TokenFile = filepath.Join(t.TempDir(), "missing")
	if _, err := deploy.NewPlan(src, []deploy.Target{bad}, deploy.Options{}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing token file: %v", err)
	}
}

// TestValidateVMSettings refuses the generated VM's settings offline,
// each error naming the option.
func TestValidateVMSettings(t *testing.T) {
	ok := deploy.DefaultTarget()
	ok.Host, ok.VMID = "pve1", 120
	ok.BIOS, ok.EFIType, ok.PreEnrolledKeys, ok.TPM, ok.CloudInit = "ovmf", "4m", true, true, true
	ok.Net = deploy.Strings{"net0=virtio,bridge=vmbr0,tag=20", "net1=e1000,bridge=vmbr1,trunks=10;20"}
	ok.Disks = deploy.Strings{"scsi1=data.qcow2", "drive-virtio0=/srv/x.raw"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid target: %v", err)
	}
	for _, tc := range []struct {
		name string
		set  func(*deploy.Target)
		want string
	}{
		{"efitype without ovmf", func(t *deploy.Target) { t.BIOS = "seabios" }, "efitype"},
		{"efitype 3m", func(t *deploy.Target) { t.EFIType = "3m" }, "efitype"},
		{"keys with 2m", func(t *deploy.Target) { t.EFIType = "2m" }, "pre-enrolled-keys"},
		{"bad bios", func(t *deploy.Target) { t.BIOS = "uefi" }, "bios"},
		{"bad net model", func(t *deploy.Target) { t.Net = deploy.Strings{"net0=virtio9,bridge=vmbr0"} }, `net "net0=virtio9,bridge=vmbr0"`},
		{"bad tag", func(t *deploy.Target) { t.Net = deploy.Strings{"virtio,bridge=vmbr0,tag=5000"} }, "tag"},
		{"net key twice", func(t *deploy.Target) { t.Net = deploy.Strings{"net0=virtio", "net0=e1000"} }, "net0"},
		{"disk without key", func(t *deploy.Target) { t.Disks = deploy.Strings{"data.qcow2"} }, `disk "data.qcow2"`},
		{"disk with bad key", func(t *deploy.Target) { t.Disks = deploy.Strings{"scsi99=d.raw"} }, `disk "scsi99=d.raw"`},
		{"disk over the source", func(t *deploy.Target) { t.Disks = deploy.Strings{"scsi0=d.raw"} }, `disk "scsi0=d.raw": scsi0 is taken`},
		{"disk twice", func(t *deploy.Target) { t.Disks = deploy.Strings{"scsi1=a.raw", "drive-scsi1=b.raw"} }, "scsi1 is taken"},
	} {
		tg := ok
		tc.set(&tg)
		err := tg.Validate()
		if !errors.Is(err, deploy.ErrInvalidTarget) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	// A targets file may give net as one string, as older files do.
	var tg deploy.Target
	if err := json.Unmarshal([]byte(`{"net":"virtio,bridge=vmbr2","disks":["scsi1=d.raw"],"tpm":true,"efitype":"2m","pre-enrolled-keys":false}`), &tg); err != nil {
		t.Fatal(err)
	}
	if len(tg.Net) != 1 || tg.Net[0] != "virtio,bridge=vmbr2" || !tg.TPM || tg.EFIType != "2m" || len(tg.Disks) != 1 {
		t.Errorf("targets file entry read as %+v", tg)
	}
}
