package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vmatool/vmatool/internal/pve/pvesim"
	"github.com/vmatool/vmatool/internal/remote/sshtest"
	"github.com/vmatool/vmatool/vma"
)

// node is a stand-in Proxmox node: a real sshd whose qmrestore, qm and
// pvesh record what they were asked and keep what they were sent.
type node struct {
	srv  *sshtest.Server
	dump string // the dump directory
	rec  string // where the stand-ins record
}

func newNode(t *testing.T) *node {
	t.Helper()
	srv := sshtest.Start(t)
	n := &node{srv: srv, dump: filepath.Join(t.TempDir(), "dump"), rec: t.TempDir()}
	if err := os.Mkdir(n.dump, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(n.rec, "vms.json"), []byte("[]"))
	srv.AddCommand(t, "pvesh", fmt.Sprintf("cat %s/vms.json\n", n.rec))
	srv.AddCommand(t, "qm", fmt.Sprintf("echo \"$@\" >> %s/qm.log\n", n.rec))
	srv.AddCommand(t, "qmrestore", fmt.Sprintf(`echo "$@" > %[1]s/qmrestore.args
if [ -f %[1]s/qmrestore.fail ]; then cat %[1]s/qmrestore.fail >&2; exit 1; fi
if [ "$1" = - ]; then cat > %[1]s/restored-$2.vma; else cp "$1" %[1]s/restored-$2.vma; fi
`, n.rec))
	return n
}

// args are the flags that reach the node.
func (n *node) args(extra ...string) []string {
	return append([]string{"deploy", "-q", "--host", fmt.Sprintf("%s@%s", n.srv.User, n.srv.Addr), "--known-hosts", n.srv.KnownHostsFile,
		"--identity", n.srv.ClientKeyFile, "--dump-dir", n.dump}, extra...)
}

func (n *node) read(t *testing.T, name string) string {
	b, _ := os.ReadFile(filepath.Join(n.rec, name))
	return strings.TrimSpace(string(b))
}

var deployEnvVars = []string{"SSH_AUTH_SOCK=", "PVE_TOKEN="}

// restoredDisk unpacks what qmrestore received with vmatool's own reader.
func restoredDisk(t *testing.T, archive string) (disk []byte, conf string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatalf("qmrestore received nothing: %v", err)
	}
	defer f.Close()
	dr, _, err := vma.Decompress(f)
	if err != nil {
		t.Fatal(err)
	}
	r, err := vma.NewReader(dr)
	if err != nil {
		t.Fatal(err)
	}
	d := r.Header().Devices[0]
	tgt := &memFile{b: make([]byte, d.Size)}
	if err := vma.Extract(context.Background(), r, map[int]io.WriterAt{d.ID: tgt}); err != nil {
		t.Fatal(err)
	}
	c, _ := r.Header().Config("qemu-server.conf")
	return tgt.b, string(c)
}

type memFile struct{ b []byte }

func (m *memFile) WriteAt(p []byte, off int64) (int, error) { return copy(m.b[off:], p), nil }

func TestDeployOverSSH(t *testing.T) {
	n := newNode(t)
	img := testImage(t, t.TempDir(), "nixos.raw", 3<<20)
	want, _ := os.ReadFile(img)
	r := vmatool(t, nil, deployEnvVars, n.args("--vmid", "120", "--storage", "local-zfs", "--start", "--name", "web1", img)...).mustSucceed(t)
	if !strings.Contains(r.stdout, "ok") || !strings.Contains(r.stdout, "restored, started") {
		t.Errorf("results table: %q", r.stdout)
	}
	args := strings.Fields(n.read(t, "qmrestore.args"))
	if len(args) != 4 || !strings.HasPrefix(args[0], n.dump+"/vzdump-qemu-120-") || !strings.HasSuffix(args[0], ".vma.zst") || strings.Join(args[1:], " ") != "120 --storage local-zfs" {
		t.Errorf("qmrestore %v", args)
	}
	disk, conf := restoredDisk(t, filepath.Join(n.rec, "restored-120.vma"))
	if !bytes.Equal(disk, want) {
		t.Error("the restored disk differs from the image")
	}
	for _, line := range []string{"name: web1", "scsi0: local-zfs:vm-120-disk-0,size=3M", "#qmdump#map:scsi0:drive-scsi0:local-zfs:raw:"} {
		if !strings.Contains(conf, line) {
			t.Errorf("config lacks %q:\n%s", line, conf)
		}
	}
	if got := n.read(t, "qm.log"); got != "start 120" {
		t.Errorf("qm calls: %q", got)
	}
	assertEmptyDir(t, n.dump) // archive deleted after the restore
}

func TestDeployStream(t *testing.T) {
	n := newNode(t)
	img := testImage(t, t.TempDir(), "nixos.raw", 2<<20)
	want, _ := os.ReadFile(img)
	vmatool(t, nil, deployEnvVars, n.args("--vmid", "9000", "--stream", "--template", img)...).mustSucceed(t)
	if got := n.read(t, "qmrestore.args"); got != "- 9000 --storage local-lvm" {
		t.Errorf("qmrestore %q", got)
	}
	raw, _ := os.ReadFile(filepath.Join(n.rec, "restored-9000.vma"))
	if !bytes.HasPrefix(raw, []byte("VMA\x00")) {
		t.Error("--stream must send an uncompressed archive")
	}
	if disk, _ := restoredDisk(t, filepath.Join(n.rec, "restored-9000.vma")); !bytes.Equal(disk, want) {
		t.Error("the restored disk differs from the image")
	}
	if got := n.read(t, "qm.log"); got != "template 9000" {
		t.Errorf("qm calls: %q", got)
	}
	assertEmptyDir(t, n.dump)
}

func TestDeployArchiveKept(t *testing.T) {
	n := newNode(t)
	src := filepath.Join(vectorDir, "v01-single.vma.zst")
	r := vmatool(t, nil, append(deployEnvVars, "TZ=UTC"), n.args("--vmid", "121", "--keep-archive", "--json", src)...).mustSucceed(t)
	names := dirNames(t, n.dump)
	if len(names) != 1 || !strings.HasSuffix(names[0], ".vma.zst") {
		t.Fatalf("dump dir holds %v", names)
	}
	if fileSHA(t, filepath.Join(n.dump, names[0])) != fileSHA(t, src) {
		t.Error("the archive was changed on the way")
	}
	if !strings.Contains(r.stdout, `"ok": true`) || !strings.Contains(r.stdout, names[0]) {
		t.Errorf("--json: %s", r.stdout)
	}
}

func TestDeployRefusesExistingVM(t *testing.T) {
	n := newNode(t)
	img := testImage(t, t.TempDir(), "nixos.raw", 1<<20)
	writeFile(t, filepath.Join(n.rec, "vms.json"), []byte(`[{"vmid":120,"node":"pve2","type":"qemu"}]`))
	r := vmatool(t, nil, deployEnvVars, n.args("--vmid", "120", img)...)
	if r.code != 1 || !strings.Contains(r.stdout, "already exists on node pve2") {
		t.Errorf("exit %d, %q", r.code, r.stdout)
	}
	assertEmptyDir(t, n.dump)
	if n.read(t, "qmrestore.args") != "" {
		t.Error("qmrestore ran")
	}
	vmatool(t, nil, deployEnvVars, n.args("--vmid", "120", "--force", "--unique", img)...).mustSucceed(t)
	if got := n.read(t, "qmrestore.args"); !strings.HasSuffix(got, "120 --storage local-lvm --force 1 --unique 1") {
		t.Errorf("qmrestore %q", got)
	}
}

func TestDeployRestoreFailure(t *testing.T) {
	n := newNode(t)
	img := testImage(t, t.TempDir(), "nixos.raw", 1<<20)
	writeFile(t, filepath.Join(n.rec, "qmrestore.fail"), []byte("unable to restore VM 120 - storage 'local-lvm' does not exist\n"))
	r := vmatool(t, nil, deployEnvVars, n.args("--vmid", "120", img)...)
	if r.code != 1 || !strings.Contains(r.stdout, "storage 'local-lvm' does not exist") || !strings.Contains(r.stdout, "stays at") {
		t.Errorf("exit %d, %q", r.code, r.stdout)
	}
	// qmrestore leaves the config of a VM it failed to restore.
	if got := n.read(t, "qm.log"); got != "destroy 120 --purge 1 --destroy-unreferenced-disks 1" || !strings.Contains(r.stderr, "removed VM 120") {
		t.Errorf("qm calls %q, stderr %q", got, r.stderr)
	}

	// Refused up front: nothing was created, nothing is destroyed.
	os.Remove(filepath.Join(n.rec, "qm.log"))
	writeFile(t, filepath.Join(n.rec, "qmrestore.fail"), []byte("unable to restore VM 121 - VM 121 already exists on node 'pve2'\n"))
	r = vmatool(t, nil, deployEnvVars, n.args("--vmid", "121", img)...)
	if r.code != 1 || n.read(t, "qm.log") != "" || strings.Contains(r.stderr, "removed VM") {
		t.Errorf("exit %d, qm calls %q, stderr %q", r.code, n.read(t, "qm.log"), r.stderr)
	}
}

func TestDeployHostKeys(t *testing.T) {
	n := newNode(t)
	img := testImage(t, t.TempDir(), "nixos.raw", 1<<20)
	empty := writeFile(t, filepath.Join(t.TempDir(), "known_hosts"), nil)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	otherPub, _ := ssh.NewSignerFromKey(other)
	changed := writeFile(t, filepath.Join(t.TempDir(), "known_hosts"),
		[]byte(fmt.Sprintf("[%s]:%d %s", n.srv.Host, n.srv.Port, ssh.MarshalAuthorizedKey(otherPub.PublicKey()))))
	for _, tc := range []struct{ name, file, want string }{
		{"unknown host", empty, "is not in " + empty},
		{"changed key", changed, "has CHANGED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := n.args("--vmid", "120", img)
			args = append(args, "--known-hosts", tc.file)
			r := vmatool(t, nil, deployEnvVars, args...)
			if r.code != 1 || !strings.Contains(r.stdout, tc.want) {
				t.Errorf("exit %d, %q", r.code, r.stdout)
			}
			assertEmptyDir(t, n.dump)
		})
	}
	t.Run("insecure", func(t *testing.T) {
		args := append(n.args("--vmid", "120", img), "--known-hosts", empty, "--insecure-ignore-host-key")
		r := vmatool(t, nil, deployEnvVars, args...).mustSucceed(t)
		if !strings.Contains(r.stderr, "not checking the SSH host key") {
			t.Errorf("no warning: %q", r.stderr)
		}
	})
	t.Run("wrong client key", func(t *testing.T) {
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		blk, _ := ssh.MarshalPrivateKey(k, "")
		key := writeFile(t, filepath.Join(t.TempDir(), "id"), pem.EncodeToMemory(blk))
		os.Chmod(key, 0o600)
		args := append(n.args("--vmid", "120", img), "--identity", key)
		args = removePair(args, "--identity", n.srv.ClientKeyFile)
		r := vmatool(t, nil, deployEnvVars, args...)
		if r.code != 1 || !strings.Contains(r.stdout, "authentication failed") {
			t.Errorf("exit %d, %q", r.code, r.stdout)
		}
	})
}

func removePair(args []string, flag, value string) []string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag && args[i+1] == value {
			return append(append([]string(nil), args[:i]...), args[i+2:]...)
		}
	}
	return args
}

func TestDeployThroughAPI(t *testing.T) {
	n := newNode(t)
	img := testImage(t, t.TempDir(), "nixos.raw", 2<<20)
	want, _ := os.ReadFile(img)
	var got []byte
	sim := pvesim.New(t, pvesim.WithStorageDir("local", n.dump), pvesim.WithRestoreHook(func(r pvesim.Restore) error {
		got, _ = restoredDisk(t, r.Path)
		return nil
	}))
	token := writeFile(t, filepath.Join(t.TempDir(), "token"), []byte(sim.Token+"\n"))
	api := []string{"--vmid", "130", "--storage", "local", "--restore", "api", "--api-url", sim.URL, "--node", sim.Node, "--tls-fingerprint", sim.Fingerprint}
	r := vmatool(t, nil, deployEnvVars, n.args(append(api, "--token-file", token, "--start", img)...)...).mustSucceed(t)
	if !bytes.Equal(got, want) {
		t.Error("the API restored a disk that differs from the image")
	}
	if len(sim.CallsTo("POST", "/nodes/"+sim.Node+"/qemu/130/status/start")) != 1 {
		t.Errorf("no start call; calls: %+v", sim.Calls())
	}
	for _, v := range sim.Volumes("local") {
		if strings.Contains(v, ":backup/") {
			t.Errorf("archive not deleted: %v", v)
		}
	}
	if strings.Contains(r.stdout+r.stderr, secretOf(sim.Token)) {
		t.Error("the token secret was printed")
	}

	t.Run("wrong token", func(t *testing.T) {
		bad := writeFile(t, filepath.Join(t.TempDir(), "token"), []byte("root@pam!x=not-the-secret-0000"))
		r := vmatool(t, nil, deployEnvVars, n.args(append(api, "--token-file", bad, img)...)...)
		if r.code != 1 || !strings.Contains(r.stdout, "401") || strings.Contains(r.stdout+r.stderr, "not-the-secret") {
			t.Errorf("exit %d, %q %q", r.code, r.stdout, r.stderr)
		}
		assertEmptyDir(t, n.dump)
	})
	t.Run("token from the environment, certificate not pinned", func(t *testing.T) {
		args := n.args("--vmid", "131", "--restore", "api", "--api-url", sim.URL, "--node", sim.Node, img)
		r := vmatool(t, nil, append(deployEnvVars, "PVE_TOKEN="+sim.Token), args...)
		if r.code != 1 || !strings.Contains(strings.ToLower(r.stdout), "certificate") {
			t.Errorf("exit %d, %q", r.code, r.stdout)
		}
	})
	// A failed restore leaves the VM's config behind (the simulator does
	// as qemu-server does), so deploy removes the VM it created.
	t.Run("restore task fails", func(t *testing.T) {
		sim.FailRestore(132, "lvcreate 'pve/vm-132-disk-0' error: Insufficient free space", "restore vma archive: ...")
		r := vmatool(t, nil, deployEnvVars, n.args(append(api[2:], "--vmid", "132", "--token-file", token, img)...)...)
		if r.code != 1 || !strings.Contains(r.stdout, "Insufficient free space") {
			t.Errorf("exit %d, %q", r.code, r.stdout)
		}
		if !strings.Contains(r.stderr, "removed VM 132, which this deploy had created") {
			t.Errorf("stderr %q", r.stderr)
		}
		if vm, ok := sim.VM(132); ok {
			t.Errorf("VM left behind: %+v", vm)
		}
	})
	t.Run("template fails", func(t *testing.T) {
		sim.FailTemplate(136, "unable to create template: lvrename failed")
		r := vmatool(t, nil, deployEnvVars, n.args(append(api[2:], "--vmid", "136", "--template", "--token-file", token, img)...)...)
		if r.code != 1 || !strings.Contains(r.stdout, "lvrename failed") || !strings.Contains(r.stderr, "removed VM 136") {
			t.Errorf("exit %d, %q %q", r.code, r.stdout, r.stderr)
		}
		if _, ok := sim.VM(136); ok {
			t.Error("VM left behind")
		}
	})
	t.Run("VM exists", func(t *testing.T) {
		sim.AddVM(pvesim.VM{VMID: 133, Name: "old"})
		r := vmatool(t, nil, deployEnvVars, n.args(append(api[2:], "--vmid", "133", "--token-file", token, img)...)...)
		if r.code != 1 || !strings.Contains(r.stdout, "already exists") {
			t.Errorf("exit %d, %q", r.code, r.stdout)
		}
		if vm, ok := sim.VM(133); !ok || vm.Name != "old" {
			t.Errorf("the existing VM was touched: %+v", vm)
		}
	})
	t.Run("container holds the ID", func(t *testing.T) {
		sim.AddVM(pvesim.VM{VMID: 134, Type: "lxc"})
		r := vmatool(t, nil, deployEnvVars, n.args(append(api[2:], "--vmid", "134", "--force", "--token-file", token, img)...)...)
		if r.code != 1 || !strings.Contains(r.stdout, "container CT 134") {
			t.Errorf("exit %d, %q", r.code, r.stdout)
		}
	})
	t.Run("forced restore fails", func(t *testing.T) {
		sim.AddVM(pvesim.VM{VMID: 135, Name: "old"})
		sim.FailRestore(135, "lvcreate failed")
		r := vmatool(t, nil, deployEnvVars, n.args(append(api[2:], "--vmid", "135", "--force", "--token-file", token, img)...)...)
		if r.code != 1 || !strings.Contains(r.stdout, "replaced with --force") || !strings.Contains(r.stdout, "lost") {
			t.Errorf("exit %d, %q", r.code, r.stdout)
		}
		if strings.Contains(r.stderr, "removed VM") {
			t.Errorf("deploy removed a VM it had not created: %q", r.stderr)
		}
		if vm, ok := sim.VM(135); !ok || vm.Config["memory"] != "128" || vm.Name != "" {
			t.Errorf("VM 135 after the failed forced restore: %+v", vm)
		}
	})
}

func secretOf(token string) string {
	_, s, _ := strings.Cut(token, "=")
	return s
}

func TestDeployDroppedConnection(t *testing.T) {
	n := newNode(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "big.raw")
	b := make([]byte, 96<<20)
	rand.Read(b) // incompressible, so the upload takes a while
	writeFile(t, img, b)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 500; i++ {
			if names, _ := filepath.Glob(filepath.Join(n.dump, "*.part")); len(names) > 0 {
				time.Sleep(50 * time.Millisecond)
				n.srv.DropConnections(t)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	r := vmatool(t, nil, deployEnvVars, n.args("--vmid", "140", "--level", "1", img)...)
	<-done
	if r.code != 1 {
		t.Errorf("exit %d after a dropped connection, %q", r.code, r.stdout)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(dirNames(t, n.dump)) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	assertEmptyDir(t, n.dump)
	if n.read(t, "qmrestore.args") != "" {
		t.Error("qmrestore ran after a failed upload")
	}
}

func TestDeployDiskFull(t *testing.T) {
	n := newNode(t)
	img := testImage(t, t.TempDir(), "nixos.raw", 4<<20)
	// The archive name carries the second deploy starts in; make every
	// name of the next minute a .part that writes to /dev/full.
	now := time.Now()
	for s := -2; s < 60; s++ {
		name := fmt.Sprintf("vzdump-qemu-150-%s.vma.zst.part", now.Add(time.Duration(s)*time.Second).Format("2006_01_02-15_04_05"))
		os.Symlink("/dev/full", filepath.Join(n.dump, name))
	}
	r := vmatool(t, nil, deployEnvVars, n.args("--vmid", "150", img)...)
	if r.code != 1 || !strings.Contains(r.stdout, "No space left on device") {
		t.Errorf("exit %d, %q", r.code, r.stdout)
	}
	if n.read(t, "qmrestore.args") != "" {
		t.Error("qmrestore ran after a failed upload")
	}
}

func TestDeployTargetsFile(t *testing.T) {
	n := newNode(t)
	img := testImage(t, t.TempDir(), "nixos.raw", 1<<20)
	writeFile(t, filepath.Join(n.rec, "vms.json"), []byte(`[{"vmid":203,"node":"pve","type":"qemu"}]`))
	host := fmt.Sprintf("%s@%s", n.srv.User, n.srv.Addr)
	targets := writeFile(t, filepath.Join(t.TempDir(), "targets.json"), []byte(fmt.Sprintf(`[
  {"name": "web1", "host": %[1]q, "vmid": 201, "storage": "fast", "tags": ["web"], "memory": 2048, "start": true},
  {"name": "db1",  "host": %[1]q, "vmid": 202, "tags": ["db"]},
  {"name": "web2", "host": %[1]q, "vmid": 203, "tags": ["web"], "vm-tags": ["nixos", "web"]}
]`, host)))
	args := []string{"deploy", "-q", "--targets", targets, "--tag", "web", "--parallel", "2", "--known-hosts", n.srv.KnownHostsFile,
		"--identity", n.srv.ClientKeyFile, "--dump-dir", n.dump, img}
	r := vmatool(t, nil, deployEnvVars, args...)
	if r.code != 1 {
		t.Errorf("exit %d with one failing target", r.code)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "web1") || !strings.Contains(lines[1], " ok ") ||
		!strings.Contains(lines[2], "web2") || !strings.Contains(lines[2], "FAILED") || !strings.Contains(lines[2], "already exists") {
		t.Errorf("table:\n%s", r.stdout)
	}
	_, conf := restoredDisk(t, filepath.Join(n.rec, "restored-201.vma"))
	if !strings.Contains(conf, "memory: 2048") || !strings.Contains(conf, "fast:vm-201-disk-0") {
		t.Errorf("web1's config did not take the file's settings:\n%s", conf)
	}
	if _, err := os.Stat(filepath.Join(n.rec, "restored-202.vma")); err == nil {
		t.Error("db1 was deployed without its tag")
	}

	t.Run("dry run touches nothing", func(t *testing.T) {
		r := vmatool(t, nil, deployEnvVars, "deploy", "--targets", targets, "--dry-run", "--host", "root@pve.invalid", img).mustSucceed(t)
		if strings.Count(r.stdout, "\n") != 3 || !strings.Contains(r.stdout, "root@pve.invalid") {
			t.Errorf("plan:\n%s", r.stdout)
		}
	})
	t.Run("hostile values", func(t *testing.T) {
		pwned := filepath.Join(t.TempDir(), "pwned")
		bad := writeFile(t, filepath.Join(t.TempDir(), "t.json"), []byte(fmt.Sprintf(`[{"host": %q, "vmid": 300, "dump-dir": "/tmp/x$(touch %s)"}]`, host, pwned)))
		vmatool(t, nil, deployEnvVars, "deploy", "-q", "--targets", bad, "--known-hosts", n.srv.KnownHostsFile, "--identity", n.srv.ClientKeyFile, img)
		if _, err := os.Stat(pwned); err == nil {
			t.Error("a dump-dir from the targets file ran a command on the node")
		}
		bad = writeFile(t, filepath.Join(t.TempDir(), "t.json"), []byte(fmt.Sprintf(`[{"host": %q, "vmid": 300, "storage": "x;touch %s"}]`, host, pwned)))
		if r := vmatool(t, nil, deployEnvVars, "deploy", "--targets", bad, img); r.code != 2 {
			t.Errorf("hostile storage: exit %d", r.code)
		}
		bad = writeFile(t, filepath.Join(t.TempDir(), "t.json"), []byte(`[{"host": "h", "vmid": 300, "token": "x"}]`))
		if r := vmatool(t, nil, deployEnvVars, "deploy", "--targets", bad, img); r.code != 2 || !strings.Contains(r.stderr, `unknown key "token"`) {
			t.Errorf("unknown key: exit %d %q", r.code, r.stderr)
		}
	})
}

func TestDeployQcow2Source(t *testing.T) {
	n := newNode(t)
	vmatool(t, nil, deployEnvVars, n.args("--vmid", "160", "--stream", demoImage)...).mustSucceed(t)
	disk, conf := restoredDisk(t, filepath.Join(n.rec, "restored-160.vma"))
	if got := sha(disk); got != demoRawSHA {
		t.Errorf("restored disk sha256 %s, want the demo image's raw content %s", got, demoRawSHA)
	}
	if !strings.Contains(conf, "scsi0: local-lvm:vm-160-disk-0,size=64M") {
		t.Errorf("config:\n%s", conf)
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
