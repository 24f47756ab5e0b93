package deploy_test

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/vmatool/vmatool/internal/deploy"
	"github.com/vmatool/vmatool/internal/deploy/nodetest"
	"github.com/vmatool/vmatool/internal/pve"
	"github.com/vmatool/vmatool/internal/pve/pvesim"
)

// apiSetup is a stand-in node for the SSH upload whose dump folder backs
// the simulator's "local" storage, so the simulated restore reads what
// was uploaded; restored keeps the disks each restore found.
type apiSetup struct {
	n        *nodetest.Node
	sim      *pvesim.Server
	mu       sync.Mutex
	restored map[int][]byte
}

func newAPISetup(t *testing.T, opts ...pvesim.Option) *apiSetup {
	s := &apiSetup{n: nodetest.Start(t), restored: map[int][]byte{}}
	opts = append(opts, pvesim.WithStorageDir("local", s.n.Dump), pvesim.WithRestoreHook(func(r pvesim.Restore) error {
		_, disks := unpack(t, r.Path)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.restored[r.VMID] = disks["drive-scsi0"]
		return nil
	}))
	s.sim = pvesim.New(t, opts...)
	return s
}

func (s *apiSetup) target(t *testing.T, vmid int) deploy.Target {
	tg := nodeTarget(s.n, vmid, deploy.ViaAPI)
	sim := simTarget(t, s.sim, vmid, deploy.ViaAPI)
	tg.APIURL, tg.TLSFingerprint, tg.TokenFile, tg.Node = sim.APIURL, sim.TLSFingerprint, sim.TokenFile, s.sim.Node
	tg.Storage = "local-lvm"
	return tg
}

// TestAPI uploads over SSH and restores through the API; the restore
// reads the image byte for byte, the start is its own task, and the
// archive is deleted through the API.
func TestAPI(t *testing.T) {
	s := newAPISetup(t)
	img, want := rawImage(t, t.TempDir(), "nixos.raw", 2<<20, 11)
	tg := s.target(t, 130)
	tg.Start = true
	res, _ := run(t, img, deploy.Options{}, tg)
	if !res[0].OK || res[0].Detail != "restored, started" {
		t.Fatalf("result %+v", res[0])
	}
	if !bytes.Equal(s.restored[130], want) {
		t.Error("the API restored a disk that differs from the image")
	}
	// start=1 on the restore would hide a failed start in an OK task.
	restores := s.sim.CallsTo("POST", "/nodes/pve/qemu")
	if len(restores) != 1 || restores[0].Params.Get("start") != "" || !strings.HasPrefix(restores[0].Params.Get("archive"), "local:backup/vzdump-qemu-130-") {
		t.Errorf("restore call %+v", restores)
	}
	if len(s.sim.CallsTo("POST", "/nodes/pve/qemu/130/status/start")) != 1 {
		t.Error("no start call")
	}
	if vm, ok := s.sim.VM(130); !ok || vm.Status != "running" {
		t.Errorf("VM 130: %+v", vm)
	}
	if v := s.sim.Volumes("local"); len(v) != 0 {
		t.Errorf("archive not deleted: %v", v)
	}
}

// TestAPIFailures covers what a real server does after the checks: a
// failed restore leaves the config, a failed start or template leaves
// the VM, a forced restore that fails has destroyed the old VM; and a
// token that cannot see VMs.
func TestAPIFailures(t *testing.T) {
	s := newAPISetup(t)
	img, _ := rawImage(t, t.TempDir(), "nixos.raw", 1<<20, 12)
	t.Run("restore task fails", func(t *testing.T) {
		s.sim.FailRestore(132, "lvcreate 'pve/vm-132-disk-0' error: Insufficient free space", "restore vma archive: ...")
		res, log := run(t, img, deploy.Options{}, s.target(t, 132))
		if res[0].OK || !errors.Is(res[0].Err, pve.ErrTaskFailed) || !strings.Contains(res[0].Detail, "Insufficient free space") {
			t.Fatalf("result %+v", res[0])
		}
		if _, ok := s.sim.VM(132); ok {
			t.Error("VM 132 left behind")
		}
		if w := log.warnings(); len(w) != 1 || !strings.Contains(w[0], "removed VM 132") {
			t.Errorf("warnings %q", w)
		}
		// The archive stays for inspection.
		if v := s.sim.Volumes("local"); len(v) != 1 || res[0].Archive == "" {
			t.Errorf("volumes %v, archive %q", v, res[0].Archive)
		}
		for _, f := range dirNames(t, s.n.Dump) {
			os.Remove(s.n.Dump + "/" + f)
		}
	})
	t.Run("start fails", func(t *testing.T) {
		s.sim.FailStart(133, "start failed: QEMU exited with code 1")
		tg := s.target(t, 133)
		tg.Start = true
		res, log := run(t, img, deploy.Options{}, tg)
		if res[0].OK || !strings.Contains(res[0].Detail, "QEMU exited with code 1") {
			t.Fatalf("result %+v", res[0])
		}
		if _, ok := s.sim.VM(133); ok || len(log.warnings()) != 1 {
			t.Errorf("VM 133 left behind, or not said: %q", log.warnings())
		}
	})
	t.Run("template task fails", func(t *testing.T) {
		s.sim.FailTemplate(134, "unable to create template: lvrename failed")
		tg := s.target(t, 134)
		tg.Template = true
		res, _ := run(t, img, deploy.Options{}, tg)
		if res[0].OK || !strings.Contains(res[0].Detail, "lvrename failed") {
			t.Fatalf("result %+v", res[0])
		}
		if _, ok := s.sim.VM(134); ok {
			t.Error("VM 134 left behind")
		}
	})
	t.Run("container holds the ID", func(t *testing.T) {
		s.sim.AddVM(pvesim.VM{VMID: 135, Type: "lxc"})
		tg := s.target(t, 135)
		tg.Force = true
		res, _ := run(t, img, deploy.Options{}, tg)
		if res[0].OK || !errors.Is(res[0].Err, deploy.ErrIDTaken) || !strings.Contains(res[0].Detail, "container CT 135") {
			t.Fatalf("result %+v", res[0])
		}
		if vm, ok := s.sim.VM(135); !ok || vm.Type != "lxc" || len(dirNames(t, s.n.Dump)) != 0 {
			t.Errorf("container touched, or something sent: %+v", vm)
		}
	})
	t.Run("forced restore fails", func(t *testing.T) {
		s.sim.AddVM(pvesim.VM{VMID: 136, Name: "old"})
		s.sim.FailRestore(136, "lvcreate failed")
		tg := s.target(t, 136)
		tg.Force = true
		res, log := run(t, img, deploy.Options{}, tg)
		if res[0].OK || !strings.Contains(res[0].Detail, "restore replacing it with force failed") || !strings.Contains(res[0].Detail, "freed the disks the archive restores") {
			t.Fatalf("result %+v", res[0])
		}
		if vm, ok := s.sim.VM(136); !ok || vm.Config["memory"] != "128" || len(log.warnings()) != 0 {
			t.Errorf("VM 136 after the failed forced restore %+v, warnings %q", vm, log.warnings())
		}
	})
}

// TestAPIHiddenGuest: a token without VM.Audit sees no guests, so the ID
// check passes; the restore call's own "already exists" is recognised,
// and nothing is deleted.
func TestAPIHiddenGuest(t *testing.T) {
	s := newAPISetup(t, pvesim.WithoutVMAudit())
	s.sim.AddVM(pvesim.VM{VMID: 137, Type: "lxc", Name: "ct"})
	img, _ := rawImage(t, t.TempDir(), "nixos.raw", 1<<20, 13)
	res, log := run(t, img, deploy.Options{}, s.target(t, 137))
	r := res[0]
	if r.OK || !errors.Is(r.Err, pve.ErrVMExists) || !strings.Contains(r.Detail, "CT 137 already exists") || !strings.Contains(r.Detail, "cannot see every guest") {
		t.Fatalf("result %+v", r)
	}
	if vm, ok := s.sim.VM(137); !ok || vm.Name != "ct" || log.has(deploy.StepUndo) {
		t.Errorf("the hidden guest was touched: %+v", vm)
	}
	if len(s.sim.CallsTo("DELETE", "/nodes/pve/qemu/137")) != 0 {
		t.Error("deploy tried to delete a guest it had not created")
	}
	// Refused up front: no restore ran, so the archive is not kept.
	if v := s.sim.Volumes("local"); len(v) != 0 || r.Archive != "" {
		t.Errorf("volumes %v, archive %q", v, r.Archive)
	}
}
