package pvesim_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmatool/vmatool/internal/pve"
	"github.com/vmatool/vmatool/internal/pve/pvesim"
	"github.com/vmatool/vmatool/internal/remote"
	"github.com/vmatool/vmatool/internal/remote/sshtest"
)

// TestDeployFlow runs the deploy path the CLI will wire up: upload an
// archive over SSH into the directory behind the simulator's "local"
// storage, restore it through the API, then delete it.
func TestDeployFlow(t *testing.T) {
	node := sshtest.Start(t)
	dumpDir := t.TempDir()
	archive := bytes.Repeat([]byte("VMA\x00 pretend archive "), 10000)
	var restored []byte
	sim := pvesim.New(t, pvesim.WithStorageDir("local", dumpDir), pvesim.WithRestoreHook(func(r pvesim.Restore) error {
		var err error
		restored, err = os.ReadFile(r.Path)
		return err
	}))
	ctx := context.Background()

	ssh, err := remote.Dial(ctx, node.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer ssh.Close()
	const name = "vzdump-qemu-120-2024_01_02-03_04_05.vma.zst"
	if err := ssh.Upload(ctx, bytes.NewReader(archive), dumpDir, name, nil); err != nil {
		t.Fatal(err)
	}

	api, err := pve.New(sim.URL, sim.Token, pve.WithTLSFingerprint(sim.Fingerprint))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.VMStatus(ctx, sim.Node, 120); !errors.Is(err, pve.ErrVMNotFound) {
		t.Fatalf("VMStatus before restore: %v", err)
	}
	vols, err := api.StorageContent(ctx, sim.Node, "local", "backup")
	if err != nil || len(vols) != 1 || vols[0].VolID != "local:backup/"+name || int64(vols[0].Size) != int64(len(archive)) {
		t.Fatalf("StorageContent = %+v, %v", vols, err)
	}
	upid, err := api.RestoreVM(ctx, sim.Node, pve.RestoreOptions{VMID: 120, Archive: vols[0].VolID, Storage: "local", Start: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.WaitTask(ctx, sim.Node, upid, 5*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(restored, archive) {
		t.Errorf("restore read %d bytes, want the %d uploaded", len(restored), len(archive))
	}
	if st, err := api.VMStatus(ctx, sim.Node, 120); err != nil || st.Status != pve.StatusRunning {
		t.Errorf("VMStatus after restore = %+v, %v", st, err)
	}
	if _, err := api.DeleteVolume(ctx, sim.Node, "local", vols[0].VolID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dumpDir, name)); !os.IsNotExist(err) {
		t.Errorf("archive left behind: %v", err)
	}
}

// TestRestoreHookFailure shows a hook error becoming the task's failure.
func TestRestoreHookFailure(t *testing.T) {
	sim := pvesim.New(t, pvesim.WithRestoreHook(func(pvesim.Restore) error {
		return errors.New("vma archive has bad checksum")
	}))
	sim.AddVolume("local", pvesim.Volume{VolID: "local:backup/vzdump-qemu-100-x.vma"})
	api, err := pve.New(sim.URL, sim.Token, pve.WithTLSFingerprint(sim.Fingerprint))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	upid, err := api.RestoreVM(ctx, sim.Node, pve.RestoreOptions{VMID: 100, Archive: "local:backup/vzdump-qemu-100-x.vma"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = api.WaitTask(ctx, sim.Node, upid, 5*time.Millisecond)
	var taskErr *pve.TaskError
	if !errors.As(err, &taskErr) || taskErr.ExitStatus != "unable to restore VM 100 - vma archive has bad checksum" {
		t.Fatalf("err = %v", err)
	}
	if _, ok := sim.VM(100); ok {
		t.Error("a failed restore of a new VM left the VM behind")
	}
}
