package deploy_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vmatool/vmatool/internal/deploy"
	"github.com/vmatool/vmatool/internal/pve"
	"github.com/vmatool/vmatool/internal/pve/pvesim"
)

// importedDisk returns the bytes of the volume the VM's config names for
// key: what the simulated import wrote, the image's virtual disk.
func importedDisk(t *testing.T, sim *pvesim.Server, vmid int, key string) []byte {
	t.Helper()
	vm, ok := sim.VM(vmid)
	if !ok {
		t.Fatalf("no VM %d", vmid)
	}
	volid, _, _ := strings.Cut(vm.Config[key], ",")
	b, ok := sim.VolumeData(sim.Node, volid)
	if !ok {
		t.Fatalf("VM %d %s: no volume %q (config %v)", vmid, key, volid, vm.Config)
	}
	return b
}

// assertNoUploadsLeft checks that the import storage and the temporary
// folder are empty again.
func assertNoUploadsLeft(t *testing.T, sim *pvesim.Server, tmp string) {
	t.Helper()
	if v := sim.Volumes("local"); len(v) != 0 {
		t.Errorf("uploads left on the node: %v", v)
	}
	if names := dirNames(t, tmp); len(names) != 0 {
		t.Errorf("temporary files left: %v", names)
	}
}

// TestImport deploys through the API alone: each disk is uploaded as
// qcow2 and imported by the create call; the imported disks match the
// source byte for byte, and the uploads are deleted.
func TestImport(t *testing.T) {
	dir := t.TempDir()
	rawPath, rawContent := rawImage(t, dir, "nixos.raw", 3<<20, 21)
	qcowPath := qcow2Image(t, dir, "nixos.qcow2", rawContent)
	for i, tc := range []struct {
		name, src string
		convert   bool
	}{
		{"qcow2 as it is", qcowPath, false},
		{"raw converted", rawPath, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := pvesim.New(t, pvesim.WithNodes(importNode()))
			tmp := t.TempDir()
			vmid := 120 + i
			tg := simTarget(t, sim, vmid, deploy.ViaImport)
			tg.VMName, tg.Memory, tg.Start = "web", 2048, true
			res, log := run(t, tc.src, deploy.Options{TempDir: tmp}, tg)
			r := res[0]
			if !r.OK || r.Detail != "imported, started" || r.Via != deploy.ViaImport {
				t.Fatalf("result %+v", r)
			}
			if got := importedDisk(t, sim, vmid, "scsi0"); sha(got) != sha(rawContent) {
				t.Error("the imported disk differs from the image")
			}
			vm, _ := sim.VM(vmid)
			if vm.Name != "web" || vm.Config["memory"] != "2048" || vm.Config["serial0"] != "socket" || vm.Status != "running" {
				t.Errorf("VM %+v", vm)
			}
			create := sim.CallsTo("POST", "/nodes/pve/qemu")
			scsi0 := create[0].Params.Get("scsi0")
			if !strings.HasPrefix(scsi0, "local-lvm:0,import-from=local:import/vmatool-"+strconv.Itoa(vmid)+"-scsi0-") || create[0].Params.Get("start") != "" {
				t.Errorf("create %v", create[0].Params)
			}
			converted := false
			for _, s := range log.steps() {
				converted = converted || strings.Contains(s, "convert")
			}
			if converted != tc.convert {
				t.Errorf("converted %v; steps %q", converted, log.steps())
			}
			if st, _ := os.Stat(tc.src); !tc.convert && r.Sent != st.Size() {
				t.Errorf("sent %d bytes of a %d-byte qcow2 uploaded as it is", r.Sent, st.Size())
			}
			up := sim.CallsTo("POST", "/nodes/pve/storage/local/upload")
			if len(up) != 1 || up[0].Params.Get("content") != "import" || up[0].Params.Get("checksum-algorithm") != "sha256" {
				t.Errorf("upload %+v", up)
			}
			assertNoUploadsLeft(t, sim, tmp)
		})
	}
}

// TestImportArchive restores Proxmox-made archives through the API
// alone: their configs and disks, an EFI disk included, go the way of an
// image.
func TestImportArchive(t *testing.T) {
	for i, file := range []string{"v02-two-disks.vma", "v01-single.vma.zst"} {
		t.Run(file, func(t *testing.T) {
			sim := pvesim.New(t, pvesim.WithNodes(importNode()))
			tmp := t.TempDir()
			vmid := 130 + i
			res, log := run(t, filepath.Join(vectors, file), deploy.Options{TempDir: tmp}, simTarget(t, sim, vmid, deploy.ViaImport))
			if !res[0].OK {
				t.Fatalf("result %+v", res[0])
			}
			want := manifest(t, strings.TrimSuffix(file, ".zst"))
			for dev, sum := range want {
				key := strings.TrimPrefix(dev, "drive-")
				if got := sha(importedDisk(t, sim, vmid, key)); got != sum {
					t.Errorf("%s: sha256 %s, manifest %s", dev, got, sum)
				}
			}
			vm, _ := sim.VM(vmid)
			if vm.Config["cores"] != "2" || vm.Config["agent"] != "1" || vm.Config["net0"] != "virtio=BC:24:11:00:00:01,bridge=vmbr0" {
				t.Errorf("config %v", vm.Config)
			}
			if len(want) == 2 {
				// The import must spell out what the archive's config
				// left to the defaults (Drive.pm: efitype 2m, no keys).
				efi := sim.CallsTo("POST", "/nodes/pve/qemu")[0].Params.Get("efidisk0")
				if !strings.Contains(efi, "efitype=2m") || !strings.Contains(efi, "pre-enrolled-keys=0") {
					t.Errorf("efidisk0 %q", efi)
				}
				if w := log.warnings(); len(w) != 1 || !strings.Contains(w[0], "qemu-server.fw") {
					t.Errorf("warnings %q", w)
				}
			}
			assertNoUploadsLeft(t, sim, tmp)
		})
	}
}

// TestImportBackingFile: the upload task refuses a qcow2 with a backing
// file (pve-storage src/PVE/Storage/Plugin.pm file_size_info), so such an
// image is converted, its chain merged.
func TestImportBackingFile(t *testing.T) {
	qemuImg := requireTool(t, "qemu-img")
	dir := t.TempDir()
	base, content := rawImage(t, dir, "base.raw", 2<<20, 22)
	top := filepath.Join(dir, "top.qcow2")
	if out, err := exec.Command(qemuImg, "create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", top).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	sim := pvesim.New(t, pvesim.WithNodes(importNode()))
	tmp := t.TempDir()
	res, log := run(t, top, deploy.Options{TempDir: tmp}, simTarget(t, sim, 140, deploy.ViaImport))
	if !res[0].OK {
		t.Fatalf("result %+v", res[0])
	}
	if sha(importedDisk(t, sim, 140, "scsi0")) != sha(content) {
		t.Error("the imported disk differs from the chain's content")
	}
	if !strings.Contains(strings.Join(log.steps(), "\n"), "convert "+top) {
		t.Errorf("steps %q", log.steps())
	}
	assertNoUploadsLeft(t, sim, tmp)
}

// TestImportRefused: what the node cannot do is refused before anything
// is uploaded.
func TestImportRefused(t *testing.T) {
	img, _ := rawImage(t, t.TempDir(), "nixos.raw", 1<<20, 23)
	for _, tc := range []struct {
		name string
		opts []pvesim.Option
		want error
		msg  string
	}{
		{"node too old", []pvesim.Option{pvesim.WithVersion("8.3.2"), pvesim.WithNodes(importNode())}, deploy.ErrNodeTooOld, "runs 8.3.2"},
		{"storage without import content", nil, deploy.ErrNoImportContent, "pvesm set local --content backup,iso,vztmpl,import"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := pvesim.New(t, tc.opts...)
			res, _ := run(t, img, deploy.Options{}, simTarget(t, sim, 150, deploy.ViaImport))
			if res[0].OK || !errors.Is(res[0].Err, tc.want) || !strings.Contains(res[0].Detail, tc.msg) {
				t.Fatalf("result %+v", res[0])
			}
			if up := sim.CallsTo("POST", "/nodes/pve/storage/local/upload"); len(up) != 0 || len(sim.VMs()) != 0 {
				t.Error("something was uploaded or created")
			}
		})
	}
}

// TestImportFailures: the failures after the checks, and what is left.
func TestImportFailures(t *testing.T) {
	img, _ := rawImage(t, t.TempDir(), "nixos.raw", 1<<20, 24)
	t.Run("container holds the ID", func(t *testing.T) {
		sim := pvesim.New(t, pvesim.WithNodes(importNode()))
		sim.AddVM(pvesim.VM{VMID: 160, Type: "lxc"})
		res, _ := run(t, img, deploy.Options{}, simTarget(t, sim, 160, deploy.ViaImport))
		if res[0].OK || !errors.Is(res[0].Err, deploy.ErrIDTaken) || len(sim.CallsTo("POST", "/nodes/pve/storage/local/upload")) != 0 {
			t.Fatalf("result %+v", res[0])
		}
	})
	t.Run("token that cannot see VMs", func(t *testing.T) {
		sim := pvesim.New(t, pvesim.WithNodes(importNode()), pvesim.WithoutVMAudit())
		sim.AddVM(pvesim.VM{VMID: 161, Name: "hidden"})
		tmp := t.TempDir()
		res, log := run(t, img, deploy.Options{TempDir: tmp}, simTarget(t, sim, 161, deploy.ViaImport))
		r := res[0]
		if r.OK || !errors.Is(r.Err, pve.ErrVMExists) || !strings.Contains(r.Detail, "VM 161 already exists") || !strings.Contains(r.Detail, "cannot see every guest") {
			t.Fatalf("result %+v", r)
		}
		if vm, ok := sim.VM(161); !ok || vm.Name != "hidden" || log.has(deploy.StepUndo) {
			t.Errorf("the hidden VM was touched: %+v", vm)
		}
		assertNoUploadsLeft(t, sim, tmp)
	})
	t.Run("start fails", func(t *testing.T) {
		sim := pvesim.New(t, pvesim.WithNodes(importNode()))
		sim.FailStart(162, "start failed: QEMU exited with code 1")
		tmp := t.TempDir()
		tg := simTarget(t, sim, 162, deploy.ViaImport)
		tg.Start = true
		res, log := run(t, img, deploy.Options{TempDir: tmp}, tg)
		if res[0].OK || !strings.Contains(res[0].Detail, "QEMU exited with code 1") {
			t.Fatalf("result %+v", res[0])
		}
		if _, ok := sim.VM(162); ok || len(log.warnings()) != 1 {
			t.Errorf("VM 162 left behind, or not said: %q", log.warnings())
		}
		if len(sim.Volumes("local-lvm")) != 0 {
			t.Errorf("disks left: %v", sim.Volumes("local-lvm"))
		}
		assertNoUploadsLeft(t, sim, tmp)
	})
	t.Run("template task fails", func(t *testing.T) {
		sim := pvesim.New(t, pvesim.WithNodes(importNode()))
		sim.FailTemplate(163, "unable to create template: lvrename failed")
		tg := simTarget(t, sim, 163, deploy.ViaImport)
		tg.Template = true
		res, _ := run(t, img, deploy.Options{}, tg)
		if res[0].OK || !strings.Contains(res[0].Detail, "lvrename failed") {
			t.Fatalf("result %+v", res[0])
		}
		if _, ok := sim.VM(163); ok {
			t.Error("VM 163 left behind")
		}
	})
	t.Run("force replaces a VM", func(t *testing.T) {
		sim := pvesim.New(t, pvesim.WithNodes(importNode()))
		sim.AddVM(pvesim.VM{VMID: 164, Name: "old"})
		sim.AddVM(pvesim.VM{VMID: 165, Name: "busy", Status: "running"})
		tg := simTarget(t, sim, 164, deploy.ViaImport)
		tg.Force = true
		res, _ := run(t, img, deploy.Options{}, tg)
		if vm, _ := sim.VM(164); !res[0].OK || vm.Name != "vm164" {
			t.Errorf("result %+v, VM %+v", res[0], vm)
		}
		// A running VM is refused up front by the delete: it stays.
		tg = simTarget(t, sim, 165, deploy.ViaImport)
		tg.Force = true
		res, _ = run(t, img, deploy.Options{}, tg)
		if vm, _ := sim.VM(165); res[0].OK || !strings.Contains(res[0].Detail, "is running") || vm.Name != "busy" || strings.Contains(res[0].Detail, "lost") {
			t.Errorf("result %+v, VM %+v", res[0], vm)
		}
	})
}

// TestAutoFallsBackToImport: under via auto, a host SSH cannot reach and
// a token give the import path, with a warning.
func TestAutoFallsBackToImport(t *testing.T) {
	img, content := rawImage(t, t.TempDir(), "nixos.raw", 1<<20, 25)
	sim := pvesim.New(t, pvesim.WithNodes(importNode()))
	tg := simTarget(t, sim, 170, deploy.ViaAuto)
	tg.Host = "root@127.0.0.1:1" // nothing listens on port 1
	tg.KnownHosts = filepath.Join(t.TempDir(), "known_hosts")
	res, log := run(t, img, deploy.Options{}, tg)
	if !res[0].OK || res[0].Via != deploy.ViaImport {
		t.Fatalf("result %+v", res[0])
	}
	if w := log.warnings(); len(w) != 1 || !strings.Contains(w[0], "SSH to root@127.0.0.1:1 failed") {
		t.Errorf("warnings %q", w)
	}
	if sha(importedDisk(t, sim, 170, "scsi0")) != sha(content) {
		t.Error("the imported disk differs")
	}
}
