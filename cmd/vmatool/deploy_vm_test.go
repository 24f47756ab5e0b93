package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vmatool/vmatool/qcow2"
)

// vmFlags are the flags that shape the generated VM: OVMF with a
// Secure Boot vars disk, a TPM, the cloud-init drive, two extra disks and
// two NICs.
func vmFlags(data, logs string) []string {
	return []string{"--vmid", "150", "--bios", "ovmf", "--efitype", "4m", "--pre-enrolled-keys", "--tpm", "--cloud-init",
		"--disk", "scsi1=" + data, "--disk", "virtio2=" + logs,
		"--net", "net0=virtio,bridge=vmbr0,tag=20", "--net", "net1=e1000,bridge=vmbr1,firewall=1"}
}

// vmImages writes the boot image (2 MiB raw), an extra disk as qcow2 of
// 8 MiB virtual size with 1 MiB of data at 3 MiB, and a 3 MiB raw one.
func vmImages(t *testing.T, dir string) (img, data, logs string) {
	t.Helper()
	img = testImage(t, dir, "nixos.raw", 2<<20)
	data = filepath.Join(dir, "data.qcow2")
	f, err := os.Create(data)
	if err != nil {
		t.Fatal(err)
	}
	w, err := qcow2.NewWriter(f, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt(bytes.Repeat([]byte("data disk\n.\n\n"), 1<<20/16), 3<<20); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	logs = testImage(t, dir, "logs.raw", 3<<20)
	return img, data, logs
}

// vmEnv is the environment of an in-process deploy: no agent or token,
// and an empty home, so no ~/.ssh/config of the machine applies.
func vmEnv(t *testing.T) []string { return append(deployEnvVars, "HOME="+t.TempDir()) }

// dryRunPlan is what deploy --dry-run --json says of its one target.
type dryRunPlan struct {
	Targets []struct {
		Via            string
		Storage        string
		Steps          []string
		QemuServerConf string            `json:"qemu-server.conf"`
		PostRestore    map[string]string `json:"post-restore"`
	}
}

// TestDeployVMFlagsDryRun: the VM flags become the archive's config
// (every disk with its #qmdump#map line, the cloud-init drive on the
// storage, the NICs as given) and the settings applied after the restore
// (the EFI vars disk with its type and keys, the TPM state, each NIC again
// so that Proxmox assigns its MAC address).
func TestDeployVMFlagsDryRun(t *testing.T) {
	dir := t.TempDir()
	img, data, logs := vmImages(t, dir)
	args := append(append([]string{"deploy", "--dry-run", "--json", "--host", "root@pve.invalid"}, vmFlags(data, logs)...), img)
	r := runInProcess(t, nil, vmEnv(t), args...).mustSucceed(t)
	var p dryRunPlan
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || len(p.Targets) != 1 {
		t.Fatalf("plan %s (%v)", r.stdout, err)
	}
	tp := p.Targets[0]
	want := `agent: 1
bios: ovmf
boot: order=scsi0
cores: 1
ide2: local-lvm:cloudinit,media=cdrom
memory: 1024
name: vm150
net0: virtio,bridge=vmbr0,tag=20
net1: e1000,bridge=vmbr1,firewall=1
ostype: l26
scsi0: local-lvm:vm-150-disk-0,size=2M
scsi1: local-lvm:vm-150-disk-1,size=8M
scsihw: virtio-scsi-single
serial0: socket
virtio2: local-lvm:vm-150-disk-2,size=3M
#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:
#qmdump#map:scsi1:drive-scsi1:local-lvm:raw:
#qmdump#map:virtio2:drive-virtio2:local-lvm:raw:
`
	if tp.QemuServerConf != want {
		t.Errorf("qemu-server.conf:\n%s\nwant:\n%s", tp.QemuServerConf, want)
	}
	post := map[string]string{
		"efidisk0":  "local-lvm:1,efitype=4m,pre-enrolled-keys=1",
		"tpmstate0": "local-lvm:1,version=v2.0",
		"net0":      "virtio,bridge=vmbr0,tag=20",
		"net1":      "e1000,bridge=vmbr1,firewall=1",
	}
	if len(tp.PostRestore) != len(post) {
		t.Errorf("post-restore %v, want %v", tp.PostRestore, post)
	}
	for k, v := range post {
		if tp.PostRestore[k] != v {
			t.Errorf("post-restore %s: %q, want %q", k, tp.PostRestore[k], v)
		}
	}
	if tp.Via != "ssh" || tp.Storage != "local-lvm" || !slicesContain(tp.Steps, "set what the restore cannot create on VM 150 (qm over SSH): "+
		"efidisk0: local-lvm:1,efitype=4m,pre-enrolled-keys=1; net0: virtio,bridge=vmbr0,tag=20; net1: e1000,bridge=vmbr1,firewall=1; tpmstate0: local-lvm:1,version=v2.0") {
		t.Errorf("via %s, storage %s, steps %q", tp.Via, tp.Storage, tp.Steps)
	}

	// A 2m vars disk without keys, on another storage; without --net the
	// one NIC is net0 on vmbr0.
	args = []string{"deploy", "--dry-run", "--json", "--host", "root@pve.invalid", "--vmid", "151", "--storage", "tank",
		"--bios", "ovmf", "--efitype", "2m", img}
	r = runInProcess(t, nil, vmEnv(t), args...).mustSucceed(t)
	p = dryRunPlan{}
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || len(p.Targets) != 1 {
		t.Fatalf("plan %s (%v)", r.stdout, err)
	}
	if got := p.Targets[0].PostRestore; len(got) != 2 || got["efidisk0"] != "tank:1,efitype=2m,pre-enrolled-keys=0" || got["net0"] != "virtio,bridge=vmbr0" {
		t.Errorf("post-restore %v", got)
	}
	if conf := p.Targets[0].QemuServerConf; !strings.Contains(conf, "\nbios: ovmf\n") || !strings.Contains(conf, "\nscsi0: tank:vm-151-disk-0,size=2M\n") ||
		strings.Contains(conf, "efidisk0") || strings.Contains(conf, "ide2") {
		t.Errorf("qemu-server.conf:\n%s", conf)
	}
}

func slicesContain(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestDeployVMFlagsRefused: combinations Proxmox would refuse are usage
// errors, named by their setting, before anything is read or sent.
func TestDeployVMFlagsRefused(t *testing.T) {
	dir := t.TempDir()
	img, data, logs := vmImages(t, dir)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--efitype", "4m"}, "an efitype needs bios ovmf"},
		{[]string{"--bios", "ovmf", "--efitype", "2m", "--pre-enrolled-keys"}, "pre-enrolled keys need bios ovmf and efitype 4m"},
		{[]string{"--bios", "uefi"}, "want seabios or ovmf"},
		{[]string{"--net", "net0=virtio,bridge=vmbr0", "--net", "net0=virtio,bridge=vmbr1"}, "net0 given twice"},
		{[]string{"--disk", "scsi1=" + data, "--disk", "scsi1=" + logs}, `disk "scsi1=` + logs + `": scsi1 is taken (scsi0 is the source image)`},
		{[]string{"--disk", "scsi0=" + data}, "scsi0 is taken"},
		{[]string{"--cloud-init", "--disk", "ide2=" + logs}, "the cloud-init drive is ide2, which a disk already takes"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			args := append(append([]string{"deploy", "--dry-run", "--host", "root@pve.invalid", "--vmid", "152"}, c.args...), img)
			r := runInProcess(t, nil, vmEnv(t), args...)
			if r.code != exitUsage || !strings.Contains(r.stderr, c.want) || r.stdout != "" {
				t.Errorf("exit %d, stderr %q, stdout %q; want %d and %q", r.code, r.stderr, r.stdout, exitUsage, c.want)
			}
		})
	}
}

// TestDeployVMFlagsOnNode deploys with the VM flags to the stand-in node,
// whose qmrestore restores the archive as a node does and whose qm set
// then completes the VM: the VM's config on the node is the generated one
// with its drives on new volumes (numbered in drive key order, sized in
// LVM-thin's 4 MiB extents), the cloud-init drive allocated, the EFI and
// TPM disks created and MAC addresses assigned; the extra disk's volume
// holds what qemu-img reads from the qcow2 image, byte for byte.
func TestDeployVMFlagsOnNode(t *testing.T) {
	qemuImg := requireTool(t, "qemu-img")
	n := newNode(t)
	dir := t.TempDir()
	img, data, logs := vmImages(t, dir)
	dataRaw := filepath.Join(dir, "data-by-qemu-img.raw")
	if out, err := exec.Command(qemuImg, "convert", "-f", "qcow2", "-O", "raw", data, dataRaw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, out)
	}
	r := runInProcess(t, nil, vmEnv(t), n.args(append(vmFlags(data, logs), "--start", img)...)...).mustSucceed(t)
	if !regexp.MustCompile(`\n\S+ +\S+ +\S+ +150 +ssh +ok +\S+ +restored, started\n$`).MatchString(r.stdout) {
		t.Errorf("results: %q", r.stdout)
	}
	conf, ok := n.Config(150)
	if !ok {
		t.Fatal("no VM 150 on the node")
	}
	mac := `BC:24:11(:[0-9A-F]{2}){3}`
	want := regexp.MustCompile(`^agent: 1
bios: ovmf
boot: order=scsi0
cores: 1
efidisk0: local-lvm:vm-150-disk-3,efitype=4m,pre-enrolled-keys=1,size=4M
ide2: local-lvm:vm-150-cloudinit,media=cdrom
memory: 1024
name: vm150
net0: virtio=` + mac + `,bridge=vmbr0,tag=20
net1: e1000=` + mac + `,bridge=vmbr1,firewall=1
ostype: l26
scsi0: local-lvm:vm-150-disk-0,size=4M
scsi1: local-lvm:vm-150-disk-1,size=8M
scsihw: virtio-scsi-single
serial0: socket
tpmstate0: local-lvm:vm-150-disk-4,size=4M,version=v2.0
virtio2: local-lvm:vm-150-disk-2,size=4M
$`)
	if !want.MatchString(conf) {
		t.Errorf("VM 150 on the node:\n%s\nwant:\n%s", conf, want)
	}
	if !n.Running(150) {
		t.Error("VM 150 not started")
	}
	if got := strings.Join(n.Volumes("local-lvm"), " "); got != "local-lvm:vm-150-cloudinit local-lvm:vm-150-disk-0 local-lvm:vm-150-disk-1 "+
		"local-lvm:vm-150-disk-2 local-lvm:vm-150-disk-3 local-lvm:vm-150-disk-4" {
		t.Errorf("volumes on the node: %s", got)
	}
	for volid, src := range map[string]string{"local-lvm:vm-150-disk-0": img, "local-lvm:vm-150-disk-1": dataRaw, "local-lvm:vm-150-disk-2": logs} {
		want, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := n.Volume(volid)
		if !ok || len(got) < len(want) || sha256hex(got[:len(want)]) != sha256hex(want) || !bytes.Equal(got[len(want):], make([]byte, len(got)-len(want))) {
			t.Errorf("volume %s: %v, %d bytes, sha256 %s; want %s (%s) then zeros", volid, ok, len(got), sha256hex(got[:min(len(want), len(got))]), sha256hex(want), src)
		}
	}
	if calls := n.Calls("qm"); len(calls) != 2 || !strings.HasPrefix(calls[0], "set 150 --efidisk0 local-lvm:1,efitype=4m,pre-enrolled-keys=1 ") || calls[1] != "start 150" {
		t.Errorf("qm calls %q", calls)
	}
	assertEmptyDir(t, n.Dump)
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
