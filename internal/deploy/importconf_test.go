package deploy

import (
	"reflect"
	"testing"
)

// TestCreateParams follows qemu-server src/PVE/QemuServer.pm
// restore_update_config_line: what the restore drops, keeps as a comment
// or renews, and each archived disk as an import.
func TestCreateParams(t *testing.T) {
	conf := `#web server%3A nixos
#second line
agent: 1
boot: order=scsi0
efidisk0: local-lvm:vm-100-disk-1,size=528K
ide2: local-lvm:vm-100-cloudinit,media=cdrom
ide3: none,media=cdrom
lock: backup
meta: creation-qemu=9.0.2,ctime=1700000000
net0: virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1
net1: e1000,macaddr=BC:24:11:00:00:02,bridge=vmbr1
parent: snap1
scsi0: local-lvm:vm-100-disk-0,discard=on,format=raw,size=32G
scsi1: local-lvm:vm-100-disk-2,backup=0,size=8G
scsi2: local-lvm:vm-100-disk-3,size=8G
smbios1: uuid=6f1c3c2e-0000-4000-8000-000000000100,manufacturer=x
template: 1
tpmstate0: local-lvm:vm-100-disk-4,size=4M
unused0: local-lvm:vm-100-disk-9
vmgenid: 1f0e2d3c-0000-4000-8000-000000000000
#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:
#qmdump#map:efidisk0:drive-efidisk0:local-lvm:raw:

[snap1]
memory: 512
`
	imports := map[string]string{"scsi0": "local:import/a.qcow2", "efidisk0": "local:import/b.qcow2", "tpmstate0": "local:import/c.qcow2"}
	var warnings []string
	got := createParams([]byte(conf), imports, "fast", true, func(s string) { warnings = append(warnings, s) })
	want := map[string]string{
		"description": "web server: nixos\nsecond line\nscsi1: local-lvm:vm-100-disk-2,backup=0,size=8G",
		"agent":       "1",
		"boot":        "order=scsi0",
		"efidisk0":    "fast:0,import-from=local:import/b.qcow2,efitype=2m,pre-enrolled-keys=0",
		"ide2":        "fast:cloudinit,media=cdrom",
		"ide3":        "none,media=cdrom",
		"net0":        "virtio,bridge=vmbr0,firewall=1",
		"net1":        "e1000,bridge=vmbr1",
		"scsi0":       "fast:0,import-from=local:import/a.qcow2,discard=on",
		"smbios1":     "manufacturer=x",
		"tpmstate0":   "fast:0,import-from=local:import/c.qcow2,version=v1.2",
		"vmgenid":     "1",
	}
	if !reflect.DeepEqual(got, want) {
		for k, v := range got {
			if want[k] != v {
				t.Errorf("%s: %q, want %q", k, v, want[k])
			}
		}
		for k := range want {
			if _, ok := got[k]; !ok {
				t.Errorf("%s missing", k)
			}
		}
	}
	if len(warnings) != 2 {
		t.Errorf("warnings %q: want one for the template, one for scsi2", warnings)
	}

	// Without unique the MAC addresses and the SMBIOS uuid stay.
	got = createParams([]byte(conf), imports, "fast", false, func(string) {})
	if got["net0"] != "virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1" || got["smbios1"] != "uuid=6f1c3c2e-0000-4000-8000-000000000100,manufacturer=x" {
		t.Errorf("without unique: %q %q", got["net0"], got["smbios1"])
	}
}

func TestMapLines(t *testing.T) {
	got := mapLines([]byte("scsi0: x\n#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:\n#qmdump#map:tpmstate0:drive-tpmstate0-backup:local-lvm:raw:\n"))
	want := map[string]string{"drive-scsi0": "scsi0", "drive-tpmstate0-backup": "tpmstate0"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%v", got)
	}
}
