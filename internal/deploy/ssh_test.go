package deploy_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmatool/vmatool/internal/deploy"
	"github.com/vmatool/vmatool/internal/deploy/nodetest"
)

// TestSSH uploads a packed image over SSH, restores it with qmrestore and
// starts it; what qmrestore read holds the image byte for byte.
func TestSSH(t *testing.T) {
	n := nodetest.Start(t)
	cn := nodetest.DefaultClusterNode(n.Name)
	cn.Storages = append(cn.Storages, nodetest.LocalZFS())
	n.SetCluster(t, cn)
	img, want := rawImage(t, t.TempDir(), "nixos.raw", 3<<20, 1)
	tg := nodeTarget(n, 120, deploy.ViaSSH)
	tg.Storage, tg.VMName, tg.Start = "local-zfs", "web1", true
	res, log := run(t, img, deploy.Options{}, tg)
	r := res[0]
	if !r.OK || r.Detail != "restored, started" || r.Via != deploy.ViaSSH || r.Node != n.Name {
		t.Fatalf("result %+v", r)
	}
	calls := n.Calls("qmrestore")
	if len(calls) != 1 {
		t.Fatalf("qmrestore calls %q", calls)
	}
	args := strings.Fields(calls[0])
	if !strings.HasPrefix(args[0], n.Dump+"/vzdump-qemu-120-") || !strings.HasSuffix(args[0], ".vma.zst") ||
		strings.Join(args[1:], " ") != "120 --storage local-zfs" {
		t.Errorf("qmrestore %q", calls[0])
	}
	configs, disks := unpack(t, n.Received(120))
	if !bytes.Equal(disks["drive-scsi0"], want) {
		t.Error("the restored disk differs from the image")
	}
	for _, line := range []string{"name: web1", "scsi0: local-zfs:vm-120-disk-0,size=3M", "#qmdump#map:scsi0:drive-scsi0:local-zfs:raw:"} {
		if !strings.Contains(string(configs["qemu-server.conf"]), line) {
			t.Errorf("config lacks %q:\n%s", line, configs["qemu-server.conf"])
		}
	}
	if got := strings.Join(n.Calls("qm"), ";"); got != "set 120 --net0 virtio,bridge=vmbr0;start 120" {
		t.Errorf("qm calls %q", got)
	}
	if !n.Running(120) {
		t.Error("VM 120 was not started")
	}
	if names := dirNames(t, n.Dump); len(names) != 0 {
		t.Errorf("the archive was not deleted: %v", names)
	}
	if r.Sent == 0 || r.Sent >= int64(len(want)) {
		t.Errorf("sent %d bytes of a %d-byte image that compresses", r.Sent, len(want))
	}
	if !log.has(deploy.StepTransfer) || !log.has(deploy.StepRestore) || !log.has(deploy.StepStart) || !log.has(deploy.StepCleanup) {
		t.Errorf("steps %q", log.steps())
	}
}

// TestSSHStream sends the archive zstd-compressed into "zstd -dc |
// qmrestore -": qmrestore reads an uncompressed VMA holding the image,
// the wire carries less, and nothing is stored on the node.
func TestSSHStream(t *testing.T) {
	n := nodetest.Start(t)
	img, want := rawImage(t, t.TempDir(), "nixos.raw", 4<<20, 2)
	tg := nodeTarget(n, 9000, deploy.ViaSSHStream)
	tg.Template = true
	res, _ := run(t, img, deploy.Options{}, tg)
	if !res[0].OK || res[0].Detail != "restored, template" {
		t.Fatalf("result %+v", res[0])
	}
	if got := strings.Join(n.Calls("qmrestore"), ";"); got != "- 9000 --storage local-lvm" {
		t.Errorf("qmrestore %q", got)
	}
	raw, err := os.ReadFile(n.Received(9000))
	if err != nil || !bytes.HasPrefix(raw, []byte("VMA\x00")) {
		t.Fatalf("qmrestore must read an uncompressed VMA (%v)", err)
	}
	if _, disks := unpack(t, n.Received(9000)); !bytes.Equal(disks["drive-scsi0"], want) {
		t.Error("the restored disk differs from the image")
	}
	if res[0].Sent <= 0 || res[0].Sent >= int64(len(raw)) {
		t.Errorf("sent %d bytes for a stream of %d", res[0].Sent, len(raw))
	}
	// The template is confirmed from the config, not from qm's status.
	if got := strings.Join(n.Calls("qm"), ";"); got != "set 9000 --net0 virtio,bridge=vmbr0;template 9000;config 9000" {
		t.Errorf("qm calls %q", got)
	}
	if conf, _ := n.Config(9000); !strings.Contains(conf, "template: 1") {
		t.Errorf("config %q", conf)
	}
	if names := dirNames(t, n.Dump); len(names) != 0 {
		t.Errorf("dump folder holds %v", names)
	}
}

// TestSSHStreamArchives streams archives made by Proxmox: a .vma.zst goes
// as it is, others are recompressed with zstd; either way qmrestore reads
// the archive whose disks match the manifest.
func TestSSHStreamArchives(t *testing.T) {
	n := nodetest.Start(t)
	for i, file := range []string{"v01-single.vma.zst", "v01-single.vma.gz", "v02-two-disks.vma"} {
		t.Run(file, func(t *testing.T) {
			src := filepath.Join(vectors, file)
			vmid := 200 + i
			res, _ := run(t, src, deploy.Options{}, nodeTarget(n, vmid, deploy.ViaSSHStream))
			if !res[0].OK {
				t.Fatalf("result %+v", res[0])
			}
			if file == "v01-single.vma.zst" {
				if st, _ := os.Stat(src); res[0].Sent != st.Size() {
					t.Errorf("sent %d bytes; a .vma.zst goes as it is (%d)", res[0].Sent, st.Size())
				}
			}
			_, disks := unpack(t, n.Received(vmid))
			for name, sum := range manifest(t, strings.TrimSuffix(strings.TrimSuffix(file, ".zst"), ".gz")) {
				if sha(disks[name]) != sum {
					t.Errorf("%s: sha256 %s, manifest %s", name, sha(disks[name]), sum)
				}
			}
		})
	}
}

// TestSSHKeepArchive sends an archive as it is and keeps it on the node.
func TestSSHKeepArchive(t *testing.T) {
	n := nodetest.Start(t)
	src := filepath.Join(vectors, "v01-single.vma.zst")
	tg := nodeTarget(n, 121, deploy.ViaSSH)
	tg.KeepArchive = true
	res, _ := run(t, src, deploy.Options{}, tg)
	names := dirNames(t, n.Dump)
	if !res[0].OK || len(names) != 1 || res[0].Archive != filepath.Join(n.Dump, names[0]) {
		t.Fatalf("result %+v, dump folder %v", res[0], names)
	}
	got, _ := os.ReadFile(filepath.Join(n.Dump, names[0]))
	want, _ := os.ReadFile(src)
	if !bytes.Equal(got, want) {
		t.Error("the archive was changed on the way")
	}
}

// TestSSHRestoreFails: a failed restore leaves the VM's config behind
// (qemu-server src/PVE/QemuServer.pm restore_vma_archive), so deploy
// removes the VM it created, says so, and leaves the archive for
// inspection.
func TestSSHRestoreFails(t *testing.T) {
	n := nodetest.Start(t)
	img, _ := rawImage(t, t.TempDir(), "nixos.raw", 1<<20, 3)
	n.FailRestore(t, "unable to restore VM 120 - lvcreate 'pve/vm-120-disk-0' error: Insufficient free space")
	res, log := run(t, img, deploy.Options{}, nodeTarget(n, 120, deploy.ViaSSH))
	r := res[0]
	if r.OK || !strings.Contains(r.Detail, "Insufficient free space") || !strings.Contains(r.Detail, "stays at") {
		t.Fatalf("result %+v", r)
	}
	if got := strings.Join(n.Calls("qm"), ";"); got != "destroy 120 --purge 1 --destroy-unreferenced-disks 1" {
		t.Errorf("qm calls %q", got)
	}
	if ids := n.Guests(); len(ids) != 0 {
		t.Errorf("left guests %v", ids)
	}
	if w := log.warnings(); len(w) != 1 || w[0] != "removed VM 120, which this deploy had created" {
		t.Errorf("warnings %q", w)
	}
	if names := dirNames(t, n.Dump); len(names) != 1 || r.Archive == "" {
		t.Errorf("the archive should stay for inspection: %v, %q", names, r.Archive)
	}
}

// TestSSHStreamRestoreFails: the same over a stream, where nothing is
// stored; and a stream that is not a VMA leaves an empty config, which
// is removed too.
func TestSSHStreamRestoreFails(t *testing.T) {
	n := nodetest.Start(t)
	img, _ := rawImage(t, t.TempDir(), "nixos.raw", 1<<20, 4)
	n.FailRestore(t, "unable to restore VM 130 - storage 'local-lvm' is not online")
	res, log := run(t, img, deploy.Options{}, nodeTarget(n, 130, deploy.ViaSSHStream))
	if res[0].OK || !strings.Contains(res[0].Detail, "is not online") {
		t.Fatalf("result %+v", res[0])
	}
	if _, ok := n.Config(130); ok || len(log.warnings()) != 1 {
		t.Errorf("VM 130 left behind, or not said: %q", log.warnings())
	}
}

// TestSSHStartFails: qm start exits non-zero when its task fails; the VM
// this run restored is removed.
func TestSSHStartFails(t *testing.T) {
	n := nodetest.Start(t)
	img, _ := rawImage(t, t.TempDir(), "nixos.raw", 1<<20, 5)
	n.FailStart(t, 140, "start failed: QEMU exited with code 1")
	tg := nodeTarget(n, 140, deploy.ViaSSH)
	tg.Start = true
	res, log := run(t, img, deploy.Options{}, tg)
	if res[0].OK || !strings.Contains(res[0].Detail, "QEMU exited with code 1") {
		t.Fatalf("result %+v", res[0])
	}
	if _, ok := n.Config(140); ok {
		t.Error("VM 140 left behind")
	}
	if got := strings.Join(n.Calls("qm"), ";"); got != "set 140 --net0 virtio,bridge=vmbr0;start 140;destroy 140 --purge 1 --destroy-unreferenced-disks 1" {
		t.Errorf("qm calls %q", got)
	}
	if names := dirNames(t, n.Dump); len(names) != 0 {
		t.Errorf("restored, so the archive goes: %v", names)
	}
	if len(log.warnings()) != 1 {
		t.Errorf("warnings %q", log.warnings())
	}
}

// TestSSHTemplateFails: qm template exits 0 although its task failed;
// the missing "template: 1" in qm config gives it away.
func TestSSHTemplateFails(t *testing.T) {
	n := nodetest.Start(t)
	img, _ := rawImage(t, t.TempDir(), "nixos.raw", 1<<20, 6)
	n.FailTemplate(t, 150, "unable to create template: lvrename failed")
	tg := nodeTarget(n, 150, deploy.ViaSSHStream)
	tg.Template = true
	res, _ := run(t, img, deploy.Options{}, tg)
	if res[0].OK || !errors.Is(res[0].Err, deploy.ErrNotConfirmed) {
		t.Fatalf("result %+v", res[0])
	}
	if got := strings.Join(n.Calls("qm"), ";"); got != "set 150 --net0 virtio,bridge=vmbr0;template 150;config 150;destroy 150 --purge 1 --destroy-unreferenced-disks 1" {
		t.Errorf("qm calls %q", got)
	}
	if _, ok := n.Config(150); ok {
		t.Error("VM 150 left behind")
	}
}

// TestSSHIDTaken: the cluster view lists containers too; neither a
// container nor a VM is touched, nothing is sent.
func TestSSHIDTaken(t *testing.T) {
	n := nodetest.Start(t)
	img, _ := rawImage(t, t.TempDir(), "nixos.raw", 1<<20, 7)
	n.AddGuest(t, 160, "lxc", "", "hostname: ct160\n")
	n.AddGuest(t, 161, "qemu", "pve2", "name: old\n")
	for _, tc := range []struct {
		vmid  int
		force bool
		want  string
	}{
		{160, true, "container CT 160"},
		{161, false, "VM 161 already exists on node pve2"},
		{161, true, "force replaces a VM on the node deployed to"},
	} {
		tg := nodeTarget(n, tc.vmid, deploy.ViaSSH)
		tg.Force = tc.force
		res, _ := run(t, img, deploy.Options{}, tg)
		if res[0].OK || !errors.Is(res[0].Err, deploy.ErrIDTaken) || !strings.Contains(res[0].Detail, tc.want) {
			t.Errorf("%d: %+v", tc.vmid, res[0])
		}
	}
	if calls := n.Calls("qmrestore"); len(calls) != 0 || len(dirNames(t, n.Dump)) != 0 {
		t.Errorf("something was sent: %q", calls)
	}
	if ids := n.Guests(); len(ids) != 2 {
		t.Errorf("guests %v", ids)
	}
}

// TestSSHForceReplacedFails: a VM replaced with force that then fails to
// restore has lost what the archive restores over, which the error
// says; deploy removes nothing.
func TestSSHForceReplacedFails(t *testing.T) {
	n := nodetest.Start(t)
	img, _ := rawImage(t, t.TempDir(), "nixos.raw", 1<<20, 8)
	n.AddGuest(t, 170, "qemu", "", "name: old\nmemory: 512\n")
	n.FailRestore(t, "unable to restore VM 170 - lvcreate failed")
	tg := nodeTarget(n, 170, deploy.ViaSSHStream)
	tg.Force = true
	res, log := run(t, img, deploy.Options{}, tg)
	if res[0].OK || !strings.Contains(res[0].Detail, "restore replacing it with force failed") || !strings.Contains(res[0].Detail, "freed the disks the archive restores") {
		t.Fatalf("result %+v", res[0])
	}
	if conf, ok := n.Config(170); !ok || conf != "memory: 128\n" {
		t.Errorf("config after the failed forced restore %q", conf)
	}
	if len(n.Calls("qm")) != 0 || len(log.warnings()) != 0 {
		t.Errorf("deploy touched a VM it had not created: %q %q", n.Calls("qm"), log.warnings())
	}
	if got := strings.Join(n.Calls("qmrestore"), ";"); got != "- 170 --storage local-lvm --force 1" {
		t.Errorf("qmrestore %q", got)
	}
}

// TestSSHStreamNeedsZstd: without zstd on the node the stream is refused
// before anything is sent, so qmrestore never leaves an empty config.
func TestSSHStreamNeedsZstd(t *testing.T) {
	n := nodetest.Start(t)
	n.WithoutZstd(t)
	img, _ := rawImage(t, t.TempDir(), "nixos.raw", 1<<20, 9)
	res, _ := run(t, img, deploy.Options{}, nodeTarget(n, 180, deploy.ViaSSHStream))
	if res[0].OK || !strings.Contains(res[0].Detail, "cannot run zstd") {
		t.Fatalf("result %+v", res[0])
	}
	if len(n.Calls("qmrestore")) != 0 || len(n.Guests()) != 0 {
		t.Error("qmrestore ran")
	}
}
