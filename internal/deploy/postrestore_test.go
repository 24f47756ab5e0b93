package deploy_test

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"sync"
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
		"efidisk0":  `^` + storage + `:vm-` + strconv.Itoa(vmid) + `-disk-\d+,efitype=4m,pre-enrolled-keys=0,size=528K$`,
		"tpmstate0": `^` + storage + `:vm-` + strconv.Itoa(vmid) + `-disk-\d+,version=v2.0,size=4M$`,
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

// TestPostRestoreSSH: over SSH, qm set creates the EFI and TPM disks and
// assigns MAC addresses after qmrestore and before the start; the second
// disk travels in the same archive, byte for byte.
func TestPostRestoreSSH(t *testing.T) {
	n := nodetest.Start(t)
	dir := t.TempDir()
	img, _ := rawImage(t, dir, "nixos.raw", 2<<20, 31)
	_, data := rawImage(t, dir, "data.raw", 1<<20, 32)
	extra := qcow2Image(t, dir, "data.qcow2", data)
	tg := nodeTarget(n, 160, deploy.ViaSSH)
	vmSettings(&tg, extra)
	res, log := run(t, img, deploy.Options{}, tg)
	if !res[0].OK {
		t.Fatalf("result %+v", res[0])
	}
	conf, _ := n.Config(160)
	assertCompleted(t, configMap(conf), "local-lvm", 160)
	calls := n.Calls("qm")
	if len(calls) != 2 || !strings.HasPrefix(calls[0], "set 160 ") || calls[1] != "start 160" {
		t.Errorf("qm calls %q", calls)
	}
	configs, disks := unpack(t, n.Received(160))
	if !bytes.Equal(disks["drive-scsi1"], data) {
		t.Error("the second disk differs from its source")
	}
	if !strings.Contains(string(configs["qemu-server.conf"]), "#qmdump#map:scsi1:drive-scsi1:local-lvm:raw:") {
		t.Errorf("no map line for scsi1:\n%s", configs["qemu-server.conf"])
	}
	if !log.has(deploy.StepConfigure) {
		t.Errorf("steps %q", log.steps())
	}
}

// TestPostRestoreAPI: through the API, the config update's task
// allocates the volumes, which the VM's config then names.
func TestPostRestoreAPI(t *testing.T) {
	n := nodetest.Start(t)
	var mu sync.Mutex
	var restored map[string][]byte
	sim := pvesim.New(t, pvesim.WithStorageDir("local", n.Dump), pvesim.WithRestoreHook(func(r pvesim.Restore) error {
		_, disks := unpack(t, r.Path)
		mu.Lock()
		restored = disks
		mu.Unlock()
		return nil
	}))
	dir := t.TempDir()
	img, _ := rawImage(t, dir, "nixos.raw", 2<<20, 33)
	extra, data := rawImage(t, dir, "data.raw", 1<<20, 34)
	tg := nodeTarget(n, 161, deploy.ViaAPI)
	s := simTarget(t, sim, 161, deploy.ViaAPI)
	tg.APIURL, tg.TLSFingerprint, tg.TokenFile, tg.Node = s.APIURL, s.TLSFingerprint, s.TokenFile, sim.Node
	vmSettings(&tg, extra)
	res, _ := run(t, img, deploy.Options{}, tg)
	if !res[0].OK {
		t.Fatalf("result %+v", res[0])
	}
	vm, _ := sim.VM(161)
	assertCompleted(t, vm.Config, "local-lvm", 161)
	for _, k := range []string{"efidisk0", "tpmstate0"} {
		volid, _, _ := strings.Cut(vm.Config[k], ",")
		if !strings.Contains(strings.Join(sim.Volumes("local-lvm"), " "), volid) {
			t.Errorf("%s volume %s missing: %v", k, volid, sim.Volumes("local-lvm"))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !bytes.Equal(restored["drive-scsi1"], data) {
		t.Error("the second disk differs from its source")
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
