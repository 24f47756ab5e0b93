package pvesim_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/vmatool/vmatool/internal/pve/pvesim"
)

const vectors = "../../../testdata/vectors/"

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func taskLog(t *testing.T, sim *pvesim.Server, upid string) string {
	t.Helper()
	var lines []struct {
		T string `json:"t"`
	}
	json.Unmarshal(do(t, sim, "GET", "/nodes/pve/tasks/"+url.PathEscape(upid)+"/log?limit=0", auth(sim), nil, "").data, &lines)
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.T + "\n")
	}
	return b.String()
}

// TestRestoreReadsArchive: the restore task reads the archive as
// restore_vma_archive does (qemu-server src/PVE/QemuServer.pm): the VM's
// config is the archive's, its drives on new volumes that hold the
// disks, on the storage the map lines name (local-lvm, LVM-thin: sizes
// in 4 MiB) unless the request names one (a directory storage: volumes
// as files in the VM's folder, sizes in KiB); the request's own config
// keys win over the archive's (restore_merge_config).
func TestRestoreReadsArchive(t *testing.T) {
	two, err := os.ReadFile(vectors + "v02-two-disks.vma")
	if err != nil {
		t.Fatal(err)
	}
	zst, err := os.ReadFile(vectors + "v01-single.vma.zst")
	if err != nil {
		t.Fatal(err)
	}
	dirStorage := pvesim.DefaultNode("pve")
	dirStorage.Storages = append(dirStorage.Storages, pvesim.StorageSpec{Name: "images", Type: "dir", Content: []string{"images"}, Total: 1 << 40})
	sim := pvesim.New(t, pvesim.WithNodes(dirStorage))
	sim.AddVolume("local", pvesim.Volume{VolID: "local:backup/vzdump-qemu-100-x.vma", Data: two})
	sim.AddVolume("local", pvesim.Volume{VolID: "local:backup/vzdump-qemu-101-x.vma.zst", Data: zst})

	_, upid := post(t, sim, "/nodes/pve/qemu", url.Values{"vmid": {"120"}, "archive": {"local:backup/vzdump-qemu-100-x.vma"}})
	if exit := wait(t, sim, "pve", upid); exit != "OK" {
		t.Fatalf("exit %q\n%s", exit, taskLog(t, sim, upid))
	}
	vm, _ := sim.VM(120)
	want := map[string]string{"agent": "1", "bios": "ovmf", "boot": "order=scsi0", "cores": "2", "memory": "2048", "name": "efi",
		"net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0", "ostype": "l26", "scsihw": "virtio-scsi-pci", "serial0": "socket",
		"efidisk0": "local-lvm:vm-120-disk-0,size=4M", "scsi0": "local-lvm:vm-120-disk-1,size=4M"}
	if len(vm.Config) != len(want) || vm.Name != "efi" || vm.Lock != "" {
		t.Errorf("config %v", vm.Config)
	}
	for k, v := range want {
		if vm.Config[k] != v {
			t.Errorf("%s: %q, want %q", k, vm.Config[k], v)
		}
	}
	for volid, d := range map[string]struct {
		size int
		sha  string
	}{
		"local-lvm:vm-120-disk-0": {540672, "033ec7eea789345de916145902da3210dcec240bd0cd6a8a89bb29e45096a64d"},
		"local-lvm:vm-120-disk-1": {1048576, "295f2adc0c764afe5ada5c9069f7126e815781b7bf6c575e60c84106a0032211"},
	} {
		data, ok := sim.VolumeData("pve", volid)
		if !ok || len(data) != 4<<20 || sha(data[:d.size]) != d.sha || !bytes.Equal(data[d.size:], make([]byte, len(data)-d.size)) {
			t.Errorf("%s: %v, %d bytes, disk sha256 %s, want %s", volid, ok, len(data), sha(data[:min(d.size, len(data))]), d.sha)
		}
	}
	log := taskLog(t, sim, upid)
	for _, line := range []string{"restore vma archive: vma extract -v -r /var/tmp/vzdumptmp", "DEV: dev_id=2 size: 1048576 devname: drive-scsi0\n",
		"map 'drive-scsi0' to '/dev/pve/vm-120-disk-1' (write zeros = 0)\n", "progress 104% (read 1638400 bytes",
		"rescan volumes...\nVM 120 (efidisk0): size of disk 'local-lvm:vm-120-disk-0' updated from 528K to 4M\n" +
			"VM 120 (scsi0): size of disk 'local-lvm:vm-120-disk-1' updated from 1M to 4M\nTASK OK\n"} {
		if !strings.Contains(log, line) {
			t.Errorf("task log lacks %q:\n%s", line, log)
		}
	}

	_, upid = post(t, sim, "/nodes/pve/qemu", url.Values{"vmid": {"121"}, "archive": {"local:backup/vzdump-qemu-101-x.vma.zst"}, "storage": {"images"}, "cores": {"4"}})
	if exit := wait(t, sim, "pve", upid); exit != "OK" {
		t.Fatalf("exit %q\n%s", exit, taskLog(t, sim, upid))
	}
	vm, _ = sim.VM(121)
	if vm.Config["scsi0"] != "images:121/vm-121-disk-0.raw,size=1032K" || vm.Config["name"] != "single" || vm.Config["cores"] != "4" {
		t.Errorf("config %v", vm.Config)
	}
	data, _ := sim.VolumeData("pve", "images:121/vm-121-disk-0.raw")
	if sha(data) != "37eb0478aa93c02e611fafff6856abeab0aa1f001068d0f1fcc00d085d826766" {
		t.Errorf("disk of the zstd archive: sha256 %s", sha(data))
	}
	if log := taskLog(t, sim, upid); !strings.Contains(log, "restore vma archive: zstd -q -d -c /var/lib/vz/dump/vzdump-qemu-101-x.vma.zst | vma extract") {
		t.Errorf("task log:\n%s", log)
	}
}

// TestRestoreArchiveFailures: a storage without images content fails
// inside the task in the backup hints, before restore_vma_archive touches
// the config (create_and_lock_config's, empty), as run_command reports an
// error of its output handler; an injected failure after them leaves
// "memory: 128"; neither leaves a volume. Force frees the old VM's disks
// at the keys the archive restores, keeps the others as unused, and
// keeps everything when it fails in the backup hints.
func TestRestoreArchiveFailures(t *testing.T) {
	two, err := os.ReadFile(vectors + "v02-two-disks.vma")
	if err != nil {
		t.Fatal(err)
	}
	sim := pvesim.New(t)
	const archive = "local:backup/vzdump-qemu-100-x.vma"
	sim.AddVolume("local", pvesim.Volume{VolID: archive, Data: two})
	_, upid := post(t, sim, "/nodes/pve/qemu", url.Values{"vmid": {"130"}, "archive": {archive}, "storage": {"local"}})
	if exit := wait(t, sim, "pve", upid); !strings.HasPrefix(exit, "command 'set -o pipefail && vma extract -v -r ") ||
		!strings.HasSuffix(exit, "' failed: Content type 'images' is not available on storage 'local'") {
		t.Errorf("exit %q", exit)
	}
	if vm, ok := sim.VM(130); !ok || len(vm.Config) != 0 {
		t.Errorf("VM 130 after the failure: %+v", vm)
	}
	sim.FailRestore(131, "lvcreate 'pve/vm-131-disk-0' error: Insufficient free space")
	_, upid = post(t, sim, "/nodes/pve/qemu", url.Values{"vmid": {"131"}, "archive": {archive}})
	if exit := wait(t, sim, "pve", upid); !strings.HasPrefix(exit, "lvcreate") {
		t.Errorf("exit %q", exit)
	}
	if vm, ok := sim.VM(131); !ok || len(vm.Config) != 1 || vm.Config["memory"] != "128" {
		t.Errorf("VM 131 after the failure: %+v", vm)
	}
	if v := sim.Volumes("local-lvm"); len(v) != 0 {
		t.Errorf("volumes left: %v", v)
	}

	old := map[string]string{"scsi0": "local-lvm:vm-132-disk-0,size=2G", "scsi1": "local-lvm:vm-132-disk-1,size=2G"}
	sim.AddVM(pvesim.VM{VMID: 132, Config: old})
	for _, v := range []string{"local-lvm:vm-132-disk-0", "local-lvm:vm-132-disk-1"} {
		sim.AddVolume("local-lvm", pvesim.Volume{VolID: v, Content: "images", VMID: 132, Size: 2 << 30})
	}
	_, upid = post(t, sim, "/nodes/pve/qemu", url.Values{"vmid": {"132"}, "archive": {archive}, "force": {"1"}, "storage": {"nowhere"}})
	if exit := wait(t, sim, "pve", upid); !strings.HasSuffix(exit, "failed: storage 'nowhere' does not exist") {
		t.Errorf("exit %q", exit)
	}
	if vm, _ := sim.VM(132); len(vm.Config) != 2 || vm.Config["scsi1"] != old["scsi1"] || len(sim.Volumes("local-lvm")) != 2 {
		t.Errorf("a force restore that failed in the backup hints changed the VM: %v, volumes %v", vm.Config, sim.Volumes("local-lvm"))
	}
	_, upid = post(t, sim, "/nodes/pve/qemu", url.Values{"vmid": {"132"}, "archive": {archive}, "force": {"1"}})
	if exit := wait(t, sim, "pve", upid); exit != "OK" {
		t.Fatalf("exit %q", exit)
	}
	if v := strings.Join(sim.Volumes("local-lvm"), " "); v != "local-lvm:vm-132-disk-0 local-lvm:vm-132-disk-1 local-lvm:vm-132-disk-2" {
		t.Errorf("volumes %s", v)
	}
	if data, _ := sim.VolumeData("pve", "local-lvm:vm-132-disk-0"); len(data) != 4<<20 {
		t.Errorf("the old disk at scsi0 was kept: %d bytes", len(data))
	}
	vm, _ := sim.VM(132)
	if vm.Config["efidisk0"] != "local-lvm:vm-132-disk-0,size=4M" || vm.Config["scsi0"] != "local-lvm:vm-132-disk-2,size=4M" ||
		vm.Config["unused0"] != "local-lvm:vm-132-disk-1" || vm.Config["scsi1"] != "" {
		t.Errorf("config %v", vm.Config)
	}
}
