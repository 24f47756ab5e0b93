package deploy_test

import (
	"bytes"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/vmatool/vmatool/internal/deploy"
	"github.com/vmatool/vmatool/internal/deploy/nodetest"
	"github.com/vmatool/vmatool/internal/pve/pvesim"
)

// vmSettings asks for what a restore cannot create: an EFI vars disk, a
// TPM state disk, two NICs without MAC addresses (one with trunks,
// whose ';' a shell would take as a command separator), and a second
// disk packed into the same archive.
func vmSettings(tg *deploy.Target, extra string) {
	tg.BIOS, tg.TPM, tg.Start = "ovmf", true, true
	tg.Net = deploy.Strings{"net0=virtio,bridge=vmbr0", "net1=virtio,bridge=vmbr1,tag=20,trunks=10;30"}
	tg.Disks = deploy.Strings{"scsi1=" + extra}
}

var macRE = `virtio=BC:24:11:[0-9A-F]{2}:[0-9A-F]{2}:[0-9A-F]{2}`

// assertCompleted checks a config for the created EFI and TPM volumes
// and the assigned MAC addresses.
func assertCompleted(t *testing.T, conf map[string]string, storage string, vmid int) {
	t.Helper()
	want := map[string]string{
		"efidisk0":  `^` + storage + `:vm-` + strconv.Itoa(vmid) + `-disk-\d+,efitype=4m,pre-enrolled-keys=0,size=4M$`,
		"tpmstate0": `^` + storage + `:vm-` + strconv.Itoa(vmid) + `-disk-\d+,size=4M,version=v2.0$`,
		"net0":      `^` + macRE + `,bridge=vmbr0$`,
		"net1":      `^` + macRE + `,bridge=vmbr1,tag=20,trunks=10;30$`,
	}
	for k, re := range want {
		if !regexp.MustCompile(re).MatchString(conf[k]) {
			t.Errorf("%s: %q does not match %s", k, conf[k], re)
		}
	}
	if conf["efidisk0"] != "" && strings.Split(conf["efidisk0"], ",")[0] == strings.Split(conf["tpmstate0"], ",")[0] {
		t.Error("EFI and TPM disks share a volume")
	}
}

func configMap(conf string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(conf, "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok {
			m[k] = v
		}
	}
	return m
}

// restoredVM is the config a restore of vmSettings' archive with the
// cloud-init drive makes on local-lvm (LVM-thin), and qm set or POST
// .../config completes: the archive's settings; its two disks on volumes
// numbered in drive key order and sized in LVM's 4 MiB extents; the
// cloud-init drive allocated by the restore; the EFI and TPM disks the
// configure step created after them, the EFI disk as large as its volume
// (create_efidisk reads the size back: LVM-thin's 4M) and the options
// sorted after the volume (print_drive), by qm set and the API alike; MAC
// addresses assigned. Values starting with ^ are patterns.
func restoredVM(vmid int) map[string]string {
	vol := func(n int) string { return "local-lvm:vm-" + strconv.Itoa(vmid) + "-disk-" + strconv.Itoa(n) }
	return map[string]string{
		"agent": "1", "bios": "ovmf", "boot": "order=scsi0", "cores": "1", "memory": "1024", "name": "vm" + strconv.Itoa(vmid),
		"ostype": "l26", "scsihw": "virtio-scsi-single", "serial0": "socket",
		"scsi0":     vol(0) + ",size=4M",
		"scsi1":     vol(1) + ",size=4M",
		"ide2":      "local-lvm:vm-" + strconv.Itoa(vmid) + "-cloudinit,media=cdrom",
		"efidisk0":  vol(2) + ",efitype=4m,pre-enrolled-keys=0,size=4M",
		"tpmstate0": vol(3) + ",size=4M,version=v2.0",
		"net0":      "^" + macRE + ",bridge=vmbr0$",
		"net1":      "^" + macRE + ",bridge=vmbr1,tag=20,trunks=10;30$",
	}
}

// assertVM compares a VM's config with want, key by key.
func assertVM(t *testing.T, conf, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if strings.HasPrefix(w, "^") {
			if !regexp.MustCompile(w).MatchString(conf[k]) {
				t.Errorf("%s: %q does not match %s", k, conf[k], w)
			}
		} else if conf[k] != w {
			t.Errorf("%s: %q, want %q", k, conf[k], w)
		}
	}
	for k, v := range conf {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s: %s", k, v)
		}
	}
}

// assertVolume checks that a volume of size bytes holds data, then zeros.
func assertVolume(t *testing.T, volid string, got []byte, ok bool, size int, data []byte) {
	t.Helper()
	if !ok || len(got) != size || sha(got[:len(data)]) != sha(data) || !bytes.Equal(got[len(data):], make([]byte, size-len(data))) {
		t.Errorf("volume %s: %v, %d bytes; want %d bytes, the disk (sha256 %s) then zeros", volid, ok, len(got), size, sha(data))
	}
}

// TestPostRestoreSSH: over SSH, qmrestore makes the VM the archive's
// config describes, with both disks restored byte for byte onto their
// volumes and the cloud-init drive allocated; qm set then creates the EFI
// and TPM disks and assigns MAC addresses, before the start.
func TestPostRestoreSSH(t *testing.T) {
	n := nodetest.Start(t)
	dir := t.TempDir()
	img, content := rawImage(t, dir, "nixos.raw", 2<<20, 31)
	_, data := rawImage(t, dir, "data.raw", 1<<20, 32)
	extra := qcow2Image(t, dir, "data.qcow2", data)
	tg := nodeTarget(n, 160, deploy.ViaSSH)
	vmSettings(&tg, extra)
	tg.CloudInit = true
	res, log := run(t, img, deploy.Options{}, tg)
	if !res[0].OK {
		t.Fatalf("result %+v", res[0])
	}
	conf, _ := n.Config(160)
	assertVM(t, configMap(conf), restoredVM(160))
	if lines := strings.Split(strings.TrimSpace(conf), "\n"); !sort.StringsAreSorted(lines) {
		t.Errorf("the config is not written in key order:\n%s", conf)
	}
	for volid, disk := range map[string][]byte{"local-lvm:vm-160-disk-0": content, "local-lvm:vm-160-disk-1": data} {
		got, ok := n.Volume(volid)
		assertVolume(t, volid, got, ok, 4<<20, disk)
	}
	if got := strings.Join(n.Volumes("local-lvm"), " "); got != "local-lvm:vm-160-cloudinit local-lvm:vm-160-disk-0 local-lvm:vm-160-disk-1 local-lvm:vm-160-disk-2 local-lvm:vm-160-disk-3" {
		t.Errorf("volumes on the node: %s", got)
	}
	calls := n.Calls("qm")
	if len(calls) != 2 || !strings.HasPrefix(calls[0], "set 160 ") || calls[1] != "start 160" {
		t.Errorf("qm calls %q", calls)
	}
	if !log.has(deploy.StepConfigure) {
		t.Errorf("steps %q", log.steps())
	}
}

// TestPostRestoreAPI: through the API the restore task makes the same
// VM from the archive, disks byte for byte; the config update's task
// allocates the EFI and TPM volumes, which the VM's config then names.
func TestPostRestoreAPI(t *testing.T) {
	n := nodetest.Start(t)
	sim := pvesim.New(t, pvesim.WithStorageDir("local", n.Dump))
	dir := t.TempDir()
	img, content := rawImage(t, dir, "nixos.raw", 2<<20, 33)
	extra, data := rawImage(t, dir, "data.raw", 1<<20, 34)
	tg := nodeTarget(n, 161, deploy.ViaAPI)
	s := simTarget(t, sim, 161, deploy.ViaAPI)
	tg.APIURL, tg.TLSFingerprint, tg.TokenFile, tg.Node = s.APIURL, s.TLSFingerprint, s.TokenFile, sim.Node
	vmSettings(&tg, extra)
	tg.CloudInit = true
	res, _ := run(t, img, deploy.Options{}, tg)
	if !res[0].OK {
		t.Fatalf("result %+v", res[0])
	}
	vm, _ := sim.VM(161)
	assertVM(t, vm.Config, restoredVM(161))
	for volid, disk := range map[string][]byte{"local-lvm:vm-161-disk-0": content, "local-lvm:vm-161-disk-1": data} {
		got, ok := sim.VolumeData(sim.Node, volid)
		assertVolume(t, volid, got, ok, 4<<20, disk)
	}
	if got := strings.Join(sim.Volumes("local-lvm"), " "); got != "local-lvm:vm-161-cloudinit local-lvm:vm-161-disk-0 local-lvm:vm-161-disk-1 local-lvm:vm-161-disk-2 local-lvm:vm-161-disk-3" {
		t.Errorf("volumes: %s", got)
	}
	if len(sim.CallsTo("POST", "/nodes/pve/qemu/161/config")) != 1 {
		t.Error("not one config update")
	}
}

// TestPostRestoreImport: the import path's create takes the settings
// itself; both disks are imported byte for byte.
func TestPostRestoreImport(t *testing.T) {
	sim := pvesim.New(t, pvesim.WithNodes(importNode()))
	dir := t.TempDir()
	img, content := rawImage(t, dir, "nixos.raw", 2<<20, 35)
	extra, data := rawImage(t, dir, "data.raw", 1<<20, 36)
	tg := simTarget(t, sim, 162, deploy.ViaImport)
	vmSettings(&tg, extra)
	res, _ := run(t, img, deploy.Options{TempDir: t.TempDir()}, tg)
	if !res[0].OK {
		t.Fatalf("result %+v", res[0])
	}
	vm, _ := sim.VM(162)
	assertCompleted(t, vm.Config, "local-lvm", 162)
	if sha(importedDisk(t, sim, 162, "scsi0")) != sha(content) || sha(importedDisk(t, sim, 162, "scsi1")) != sha(data) {
		t.Error("an imported disk differs from its source")
	}
	if len(sim.CallsTo("POST", "/nodes/pve/qemu/162/config")) != 0 {
		t.Error("the import path updated the config after the create")
	}
}

// TestPostRestoreFails: a failing config update removes the VM the run
// created, over SSH and through the API.
func TestPostRestoreFails(t *testing.T) {
	dir := t.TempDir()
	img, _ := rawImage(t, dir, "nixos.raw", 1<<20, 37)
	extra, _ := rawImage(t, dir, "data.raw", 1<<20, 38)
	t.Run("ssh", func(t *testing.T) {
		n := nodetest.Start(t)
		n.FailConfig(t, 170, "lvcreate 'pve/vm-170-disk-1' error: insufficient free space")
		tg := nodeTarget(n, 170, deploy.ViaSSHStream)
		vmSettings(&tg, extra)
		res, log := run(t, img, deploy.Options{}, tg)
		if res[0].OK || !strings.Contains(res[0].Detail, "insufficient free space") {
			t.Fatalf("result %+v", res[0])
		}
		if _, ok := n.Config(170); ok {
			t.Error("VM 170 left behind")
		}
		if n.Running(170) || !log.has(deploy.StepUndo) {
			t.Errorf("started, or no undo: %q", log.steps())
		}
	})
	t.Run("api", func(t *testing.T) {
		n := nodetest.Start(t)
		sim := pvesim.New(t, pvesim.WithStorageDir("local", n.Dump))
		sim.FailConfig(171, "lvcreate 'pve/vm-171-disk-1' error: insufficient free space")
		tg := nodeTarget(n, 171, deploy.ViaAPI)
		s := simTarget(t, sim, 171, deploy.ViaAPI)
		tg.APIURL, tg.TLSFingerprint, tg.TokenFile, tg.Node = s.APIURL, s.TLSFingerprint, s.TokenFile, sim.Node
		vmSettings(&tg, extra)
		res, _ := run(t, img, deploy.Options{}, tg)
		if res[0].OK || !strings.Contains(res[0].Detail, "insufficient free space") {
			t.Fatalf("result %+v", res[0])
		}
		if _, ok := sim.VM(171); ok {
			t.Error("VM 171 left behind")
		}
		if len(sim.CallsTo("POST", "/nodes/pve/qemu/171/status/start")) != 0 {
			t.Error("started after a failed config update")
		}
	})
}
