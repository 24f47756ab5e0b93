package nodetest_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/vmatool/vmatool/internal/deploy/nodetest"
	"github.com/vmatool/vmatool/internal/remote"
	"github.com/vmatool/vmatool/vma"
)

// archive is a zstd-compressed VMA whose config maps its one 1 MiB disk
// to local-lvm.
func archive(t *testing.T) []byte {
	t.Helper()
	var raw bytes.Buffer
	w, err := vma.NewWriter(&raw)
	if err != nil {
		t.Fatal(err)
	}
	conf := "name: small\nscsi0: local-lvm:vm-1-disk-0,size=1M\n#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:\n"
	if err := w.AddConfig("qemu-server.conf", []byte(conf)); err != nil {
		t.Fatal(err)
	}
	id, err := w.AddDevice("drive-scsi0", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for c := uint32(0); c < 16; c++ {
		if err := w.WriteCluster(id, c, bytes.Repeat([]byte{9}, vma.ClusterSize)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var zst bytes.Buffer
	zw, err := vma.Compress(&zst, vma.Zstd)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(raw.Bytes())
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return zst.Bytes()
}

type result struct {
	stdout, stderr string
	err            error
}

func run(t *testing.T, c *remote.Client, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	err := c.Run(context.Background(), args, nil, &out, &errOut)
	return result{out.String(), errOut.String(), err}
}

func dial(t *testing.T, n *nodetest.Node) *remote.Client {
	t.Helper()
	c, err := remote.Dial(context.Background(), n.SSH.Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestQmrestoreFailures: what a real node's qmrestore does when its task
// fails (qemu-server src/PVE/API2/Qemu.pm create_vm, src/PVE/QemuServer.pm
// restore_vma_archive, pve-storage src/PVE/Storage.pm archive_info,
// pve-common src/PVE/RESTEnvironment.pm): the error alone on standard
// error, the task's output and "state is NOT cleaned up" on standard
// output, and the config left behind, empty, which holds the ID. A
// storage the cluster view lacks does not exist.
func TestQmrestoreFailures(t *testing.T) {
	n := nodetest.Start(t)
	c := dial(t, n)
	good := filepath.Join(n.Dump, "vzdump-qemu-1-2024_01_02-03_04_05.vma.zst")
	if err := os.WriteFile(good, archive(t), 0o644); err != nil {
		t.Fatal(err)
	}
	notVMA := filepath.Join(n.Dump, "vzdump-qemu-1-2024_01_02-03_04_05.vma")
	if err := os.WriteFile(notVMA, bytes.Repeat([]byte("not a vma "), 2000), 0o644); err != nil {
		t.Fatal(err)
	}
	oddName := filepath.Join(n.Dump, "nixos.vma.zst")
	if err := os.WriteFile(oddName, archive(t), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		args   []string
		stderr string // a pattern
		stdout string
	}{
		{"a storage the node lacks", []string{"qmrestore", good, "101", "--storage", "local-zfs"},
			`^command 'set -o pipefail && zstd -q -d -c \S+/vzdump-qemu-1-2024_01_02-03_04_05\.vma\.zst \| vma extract -v -r /var/tmp/vzdumptmp\d+\.fifo - /var/tmp/vzdumptmp\d+' failed: storage 'local-zfs' does not exist\n$`,
			"CTIME: "},
		{"no VMA", []string{"qmrestore", notVMA, "102"},
			`^command 'set -o pipefail && vma extract -v -r /var/tmp/vzdumptmp\d+\.fifo \S+\.vma /var/tmp/vzdumptmp\d+' failed: got signal 5\n$`,
			"vma: not a vma file - wrong magic number\n"},
		{"a name archive_info does not know", []string{"qmrestore", oddName, "103"},
			`^ERROR: couldn't determine archive info from '\S+/nixos\.vma\.zst'\n$`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, c, tc.args...)
			var ee *remote.ExitError
			if !errors.As(r.err, &ee) || !regexp.MustCompile(tc.stderr).MatchString(r.stderr) {
				t.Errorf("error %v, stderr %q", r.err, r.stderr)
			}
			if !strings.Contains(r.stdout, tc.stdout) || !strings.Contains(r.stdout, "state is NOT cleaned up.\n") {
				t.Errorf("stdout %q", r.stdout)
			}
			vmid := tc.args[2]
			id, _ := strconv.Atoi(vmid)
			conf, ok := n.Config(id)
			if !ok || conf != "" {
				t.Errorf("config left %q, %v; want an empty one", conf, ok)
			}
			if r := run(t, c, "qmrestore", good, vmid); !strings.Contains(r.stderr, "unable to restore VM "+vmid+" - VM "+vmid+" already exists") {
				t.Errorf("a second restore: %q", r.stderr)
			}
		})
	}
	if v := n.Volumes("local-lvm"); len(v) != 0 {
		t.Errorf("volumes left: %v", v)
	}
}

// TestQmrestoreOverVM: force replaces the old VM's disk at the key the
// archive restores; its other disk stays, as unused (restore_vma_archive's
// $restore_cleanup_oldconf, then rescan).
func TestQmrestoreOverVM(t *testing.T) {
	n := nodetest.Start(t)
	c := dial(t, n)
	good := filepath.Join(n.Dump, "vzdump-qemu-1-2024_01_02-03_04_05.vma.zst")
	if err := os.WriteFile(good, archive(t), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"vm-110-disk-0", "vm-110-disk-1"} {
		p := filepath.Join(n.Dir, "images", n.Name, "local-lvm", v)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, make([]byte, 8<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n.AddGuest(t, 110, "qemu", "", "name: old\nscsi0: local-lvm:vm-110-disk-0,size=8M\nscsi1: local-lvm:vm-110-disk-1,size=8M\n")
	if r := run(t, c, "qmrestore", good, "110", "--force", "1"); r.err != nil {
		t.Fatalf("%v: %s", r.err, r.stderr)
	}
	conf, _ := n.Config(110)
	if want := "name: small\nscsi0: local-lvm:vm-110-disk-0,size=4M\nunused0: local-lvm:vm-110-disk-1\n"; conf != want {
		t.Errorf("config:\n%s\nwant:\n%s", conf, want)
	}
	if disk, _ := n.Volume("local-lvm:vm-110-disk-0"); len(disk) != 4<<20 || disk[0] != 9 {
		t.Errorf("scsi0's volume does not hold the archive's disk (%d bytes)", len(disk))
	}
}

// TestQmSetDisks: qm set creates disks as the API simulator's config
// update does (create_disks): the EFI disk as large as its LVM volume,
// the TPM state's options sorted after the volume; a disk on a storage the
// node lacks fails and frees the disks made before it, changing nothing.
func TestQmSetDisks(t *testing.T) {
	n := nodetest.Start(t)
	c := dial(t, n)
	n.AddGuest(t, 120, "qemu", "", "name: web\n")
	if r := run(t, c, "qm", "set", "120", "--efidisk0", "local-lvm:1,efitype=4m,pre-enrolled-keys=1", "--tpmstate0", "local-lvm:1,version=v2.0"); r.err != nil {
		t.Fatalf("%v: %s", r.err, r.stderr)
	}
	conf, _ := n.Config(120)
	if want := "efidisk0: local-lvm:vm-120-disk-0,efitype=4m,pre-enrolled-keys=1,size=4M\nname: web\ntpmstate0: local-lvm:vm-120-disk-1,size=4M,version=v2.0\n"; conf != want {
		t.Errorf("config:\n%s\nwant:\n%s", conf, want)
	}
	r := run(t, c, "qm", "set", "120", "--scsi1", "local-lvm:0.001", "--scsi2", "local-zfs:1")
	if r.err == nil || r.stderr != "storage 'local-zfs' does not exist\n" {
		t.Errorf("a missing storage: %v, %q", r.err, r.stderr)
	}
	if after, _ := n.Config(120); after != conf || len(n.Volumes("local-lvm")) != 2 {
		t.Errorf("the failed qm set changed the VM: %q, volumes %v", after, n.Volumes("local-lvm"))
	}
	if r := run(t, c, "qm", "set", "120", "--scsi1", "local-lvm:0.001"); r.err != nil {
		t.Fatalf("%v: %s", r.err, r.stderr)
	}
	if conf, _ := n.Config(120); !strings.Contains(conf, "scsi1: local-lvm:vm-120-disk-2,size=1049K\n") {
		t.Errorf("config:\n%s", conf)
	}
}
