package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vmatool/vmatool/internal/deploy/nodetest"
	"github.com/vmatool/vmatool/internal/pve/pvesim"
	"github.com/vmatool/vmatool/vma"
)

// node is a stand-in Proxmox node (package nodetest): a real sshd whose
// qmrestore, qm and pvesh behave like the real ones. rec is the folder
// holding restored-<vmid>.vma, what qmrestore read.
type node struct {
	*nodetest.Node
	rec string
}

// newNode starts a stand-in node whose cluster view has local-zfs beside
// a fresh install's local and local-lvm.
func newNode(t *testing.T) *node {
	n := nodetest.Start(t)
	cn := nodetest.DefaultClusterNode(n.Name)
	cn.Storages = append(cn.Storages, nodetest.LocalZFS())
	n.SetCluster(t, cn)
	return &node{Node: n, rec: filepath.Join(n.Dir, "received")}
}

// args are the flags that reach the node.
func (n *node) args(extra ...string) []string {
	return append([]string{"deploy", "-q", "--host", n.Host(), "--known-hosts", n.SSH.KnownHostsFile,
		"--identity", n.SSH.ClientKeyFile, "--dump-dir", n.Dump}, extra...)
}

func (n *node) calls(cmd string) string { return strings.Join(n.Calls(cmd), ";") }

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
	r := runInProcess(t, nil, deployEnvVars, n.args("--vmid", "120", "--storage", "local-zfs", "--start", "--name", "web1", img)...).mustSucceed(t)
	if !strings.Contains(r.stdout, " ssh ") || !strings.Contains(r.stdout, "restored, started") {
		t.Errorf("results table: %q", r.stdout)
	}
	args := strings.Fields(n.calls("qmrestore"))
	if len(args) != 4 || !strings.HasPrefix(args[0], n.Dump+"/vzdump-qemu-120-") || !strings.HasSuffix(args[0], ".vma.zst") || strings.Join(args[1:], " ") != "120 --storage local-zfs" {
		t.Errorf("qmrestore %v", args)
	}
	disk, conf := restoredDisk(t, n.Received(120))
	if !bytes.Equal(disk, want) {
		t.Error("the restored disk differs from the image")
	}
	for _, line := range []string{"name: web1", "scsi0: local-zfs:vm-120-disk-0,size=3M", "#qmdump#map:scsi0:drive-scsi0:local-zfs:raw:"} {
		if !strings.Contains(conf, line) {
			t.Errorf("config lacks %q:\n%s", line, conf)
		}
	}
	if got := n.calls("qm"); got != "set 120 --net0 virtio,bridge=vmbr0;start 120" || !n.Running(120) {
		t.Errorf("qm calls: %q", got)
	}
	assertEmptyDir(t, n.Dump) // archive deleted after the restore
}

// TestDeployStream: --stream is --via ssh-stream, which sends zstd into
// "zstd -dc | qmrestore -"; the template is confirmed with qm config.
func TestDeployStream(t *testing.T) {
	n := newNode(t)
	img := testImage(t, t.TempDir(), "nixos.raw", 2<<20)
	want, _ := os.ReadFile(img)
	runInProcess(t, nil, deployEnvVars, n.args("--vmid", "9000", "--stream", "--template", img)...).mustSucceed(t)
	if got := n.calls("qmrestore"); got != "- 9000 --storage local-lvm" {
		t.Errorf("qmrestore %q", got)
	}
	raw, _ := os.ReadFile(n.Received(9000))
	if !bytes.HasPrefix(raw, []byte("VMA\x00")) {
		t.Error("qmrestore must read an uncompressed archive")
	}
	if disk, _ := restoredDisk(t, n.Received(9000)); !bytes.Equal(disk, want) {
		t.Error("the restored disk differs from the image")
	}
	if got := n.calls("qm"); got != "set 9000 --net0 virtio,bridge=vmbr0;template 9000;config 9000" {
		t.Errorf("qm calls: %q", got)
	}
	assertEmptyDir(t, n.Dump)
}

func TestDeployArchiveKept(t *testing.T) {
	n := newNode(t)
	src := filepath.Join(vectorDir, "v01-single.vma.zst")
	r := runInProcess(t, nil, append(deployEnvVars, "TZ=UTC"), n.args("--vmid", "121", "--keep-archive", "--json", src)...).mustSucceed(t)
	names := dirNames(t, n.Dump)
	if len(names) != 1 || !strings.HasSuffix(names[0], ".vma.zst") {
		t.Fatalf("dump dir holds %v", names)
	}
	if fileSHA(t, filepath.Join(n.Dump, names[0])) != fileSHA(t, src) {
		t.Error("the archive was changed on the way")
	}
	var results []struct {
		OK      bool
		Via     string
		Archive string
		Sent    int64
	}
	if err := json.Unmarshal([]byte(r.stdout), &results); err != nil || len(results) != 1 || !results[0].OK ||
		results[0].Via != "ssh" || results[0].Archive != filepath.Join(n.Dump, names[0]) || results[0].Sent == 0 {
		t.Errorf("--json: %s (%v)", r.stdout, err)
	}
}

func TestDeployRefusesExistingVM(t *testing.T) {
	n := newNode(t)
	img := testImage(t, t.TempDir(), "nixos.raw", 1<<20)
	n.AddGuest(t, 120, "qemu", "pve2", "name: other\n")
	r := runInProcess(t, nil, deployEnvVars, n.args("--vmid", "120", img)...)
	if r.code != 1 || !strings.Contains(r.stdout, "already exists on node pve2") {
		t.Errorf("exit %d, %q", r.code, r.stdout)
	}
	assertEmptyDir(t, n.Dump)
	if n.calls("qmrestore") != "" {
		t.Error("qmrestore ran")
	}
	n.AddGuest(t, 122, "qemu", "", "name: old\n")
	runInProcess(t, nil, deployEnvVars, n.args("--vmid", "122", "--force", "--unique", img)...).mustSucceed(t)
	if got := n.calls("qmrestore"); !strings.HasSuffix(got, "122 --storage local-lvm --force 1 --unique 1") {
		t.Errorf("qmrestore %q", got)
	}
}

// TestDeployRestoreFailure: qmrestore leaves the config of a VM it failed
// to restore; deploy removes it and says so on stderr.
func TestDeployRestoreFailure(t *testing.T) {
	n := newNode(t)
	img := testImage(t, t.TempDir(), "nixos.raw", 1<<20)
	n.FailRestore(t, "unable to restore VM 120 - storage 'local-lvm' does not exist")
	r := runInProcess(t, nil, deployEnvVars, n.args("--vmid", "120", img)...)
	if r.code != 1 || !strings.Contains(r.stdout, "storage 'local-lvm' does not exist") || !strings.Contains(r.stdout, "stays at") {
		t.Errorf("exit %d, %q", r.code, r.stdout)
	}
	if got := n.calls("qm"); got != "destroy 120 --purge 1 --destroy-unreferenced-disks 1" || !strings.Contains(r.stderr, "removed VM 120, which this deploy had created") {
		t.Errorf("qm calls %q, stderr %q", got, r.stderr)
	}
	if _, ok := n.Config(120); ok {
		t.Error("VM 120 left behind")
	}
}

func TestDeployHostKeys(t *testing.T) {
	n := newNode(t)
	img := testImage(t, t.TempDir(), "nixos.raw", 1<<20)
	empty := writeFile(t, filepath.Join(t.TempDir(), "known_hosts"), nil)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	otherPub, _ := ssh.NewSignerFromKey(other)
	changed := writeFile(t, filepath.Join(t.TempDir(), "known_hosts"),
		[]byte(fmt.Sprintf("[%s]:%d %s", n.SSH.Host, n.SSH.Port, ssh.MarshalAuthorizedKey(otherPub.PublicKey()))))
	for _, tc := range []struct{ name, file, want string }{
		{"unknown host", empty, "is not in " + empty},
		{"changed key", changed, "has CHANGED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := n.args("--vmid", "120", img)
			args = append(args, "--known-hosts", tc.file)
			r := runInProcess(t, nil, deployEnvVars, args...)
			if r.code != 1 || !strings.Contains(r.stdout, tc.want) {
				t.Errorf("exit %d, %q", r.code, r.stdout)
			}
			assertEmptyDir(t, n.Dump)
		})
	}
	t.Run("insecure", func(t *testing.T) {
		args := append(n.args("--vmid", "120", img), "--known-hosts", empty, "--insecure-ignore-host-key")
		r := runInProcess(t, nil, deployEnvVars, args...).mustSucceed(t)
		if !strings.Contains(r.stderr, "not checking the SSH host key") {
			t.Errorf("no warning: %q", r.stderr)
		}
	})
	t.Run("wrong client key", func(t *testing.T) {
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		blk, _ := ssh.MarshalPrivateKey(k, "")
		key := writeFile(t, filepath.Join(t.TempDir(), "id"), pem.EncodeToMemory(blk))
		os.Chmod(key, 0o600)
		args := append(n.args("--vmid", "121", img), "--identity", key)
		args = removePair(args, "--identity", n.SSH.ClientKeyFile)
		r := runInProcess(t, nil, deployEnvVars, args...)
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

// TestDeployThroughAPI uploads over SSH and restores through the
// simulated API (--restore api is --via api).
func TestDeployThroughAPI(t *testing.T) {
	n := newNode(t)
	img := testImage(t, t.TempDir(), "nixos.raw", 2<<20)
	want, _ := os.ReadFile(img)
	var got []byte
	sim := pvesim.New(t, pvesim.WithStorageDir("local", n.Dump), pvesim.WithRestoreHook(func(r pvesim.Restore) error {
		got, _ = restoredDisk(t, r.Path)
		return nil
	}))
	token := writeFile(t, filepath.Join(t.TempDir(), "token"), []byte(sim.Token+"\n"))
	api := []string{"--vmid", "130", "--storage", "local-lvm", "--restore", "api", "--api-url", sim.URL, "--node", sim.Node, "--tls-fingerprint", sim.Fingerprint}
	r := runInProcess(t, nil, deployEnvVars, n.args(append(api, "--token-file", token, "--start", img)...)...).mustSucceed(t)
	if !bytes.Equal(got, want) {
		t.Error("the API restored a disk that differs from the image")
	}
	if len(sim.CallsTo("POST", "/nodes/"+sim.Node+"/qemu/130/status/start")) != 1 {
		t.Errorf("no start call; calls: %+v", sim.Calls())
	}
	if v := sim.Volumes("local"); len(v) != 0 {
		t.Errorf("archive not deleted: %v", v)
	}
	if strings.Contains(r.stdout+r.stderr, secretOf(sim.Token)) {
		t.Error("the token secret was printed")
	}
	t.Run("wrong token", func(t *testing.T) {
		bad := writeFile(t, filepath.Join(t.TempDir(), "token"), []byte("root@pam!x=not-the-secret-0000"))
		r := runInProcess(t, nil, deployEnvVars, n.args(append(api, "--token-file", bad, img)...)...)
		if r.code != 1 || !strings.Contains(r.stdout, "401") || strings.Contains(r.stdout+r.stderr, "not-the-secret") {
			t.Errorf("exit %d, %q %q", r.code, r.stdout, r.stderr)
		}
		assertEmptyDir(t, n.Dump)
	})
	t.Run("token from the environment, certificate not pinned", func(t *testing.T) {
		args := n.args("--vmid", "131", "--restore", "api", "--api-url", sim.URL, "--node", sim.Node, img)
		r := runInProcess(t, nil, append(deployEnvVars, "PVE_TOKEN="+sim.Token), args...)
		if r.code != 1 || !strings.Contains(strings.ToLower(r.stdout), "certificate") {
			t.Errorf("exit %d, %q", r.code, r.stdout)
		}
	})
	t.Run("restore task fails", func(t *testing.T) {
		sim.FailRestore(132, "lvcreate 'pve/vm-132-disk-0' error: Insufficient free space", "restore vma archive: ...")
		r := runInProcess(t, nil, deployEnvVars, n.args(append(api[2:], "--vmid", "132", "--token-file", token, img)...)...)
		if r.code != 1 || !strings.Contains(r.stdout, "Insufficient free space") || !strings.Contains(r.stderr, "removed VM 132, which this deploy had created") {
			t.Errorf("exit %d, %q %q", r.code, r.stdout, r.stderr)
		}
		if vm, ok := sim.VM(132); ok {
			t.Errorf("VM left behind: %+v", vm)
		}
	})
}

func secretOf(token string) string {
	_, s, _ := strings.Cut(token, "=")
	return s
}

// TestDeployImport needs no SSH: the token alone deploys a qcow2 image
// through the API (via auto without a host picks import), within the
// memory bound.
func TestDeployImport(t *testing.T) {
	node := pvesim.DefaultNode("pve")
	node.Storages[0].Content = append(node.Storages[0].Content, "import")
	sim := pvesim.New(t, pvesim.WithNodes(node), pvesim.WithTaskPolls(0))
	tmp := t.TempDir()
	// Without a token there is no way in: refused before connecting.
	r := runInProcess(t, nil, deployEnvVars, "deploy", "-q", "--api-url", sim.URL, "--vmid", "140", demoImage)
	if r.code != 2 || !strings.Contains(r.stderr, "needs an API token") || len(sim.Calls()) != 0 {
		t.Errorf("without a token: exit %d %q", r.code, r.stderr)
	}
	r = vmatool(t, nil, append(deployEnvVars, "PVE_TOKEN="+sim.Token, "TMPDIR="+tmp),
		"deploy", "-q", "--api-url", sim.URL, "--tls-fingerprint", sim.Fingerprint, "--vmid", "140", "--template", demoImage).mustSucceed(t)
	r.assertRSS(t)
	if !strings.Contains(r.stdout, " import ") || !strings.Contains(r.stdout, "imported, template") {
		t.Errorf("results: %q", r.stdout)
	}
	vm, ok := sim.VM(140)
	if !ok || !vm.Template {
		t.Fatalf("VM 140: %+v", vm)
	}
	volid, _, _ := strings.Cut(vm.Config["scsi0"], ",")
	disk, _ := sim.VolumeData(sim.Node, volid)
	if sum := sha256.Sum256(disk); hex.EncodeToString(sum[:]) != demoRawSHA {
		t.Error("the imported disk is not the demo image's content")
	}
	if v := sim.Volumes("local"); len(v) != 0 {
		t.Errorf("uploads left: %v", v)
	}
	assertEmptyDir(t, tmp)

	// A raw image is converted to qcow2 first, and an archive extracted,
	// within the same bound.
	img := testImage(t, t.TempDir(), "nixos.raw", 48<<20)
	for i, src := range []string{img, filepath.Join(vectorDir, "v02-two-disks.vma")} {
		r = vmatool(t, nil, append(deployEnvVars, "PVE_TOKEN="+sim.Token, "TMPDIR="+tmp),
			"deploy", "-q", "--api-url", sim.URL, "--tls-fingerprint", sim.Fingerprint, "--vmid", fmt.Sprint(141+i), "--via", "import", src).mustSucceed(t)
		r.assertRSS(t)
		t.Logf("deploy --via import of %s: peak RSS %.1f MiB", filepath.Base(src), float64(r.maxRSS)/(1<<20))
		assertEmptyDir(t, tmp)
	}
	want, _ := os.ReadFile(img)
	vm, _ = sim.VM(141)
	volid, _, _ = strings.Cut(vm.Config["scsi0"], ",")
	if disk, _ := sim.VolumeData(sim.Node, volid); !bytes.Equal(disk, want) {
		t.Error("the imported raw image differs")
	}
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
			if names, _ := filepath.Glob(filepath.Join(n.Dump, "*.part")); len(names) > 0 {
				time.Sleep(50 * time.Millisecond)
				n.SSH.DropConnections(t)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	r := runInProcess(t, nil, deployEnvVars, n.args("--vmid", "140", "--via", "ssh", "--level", "1", img)...)
	<-done
	if r.code != 1 {
		t.Errorf("exit %d after a dropped connection, %q", r.code, r.stdout)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(dirNames(t, n.Dump)) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	assertEmptyDir(t, n.Dump)
	if n.calls("qmrestore") != "" {
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
		os.Symlink("/dev/full", filepath.Join(n.Dump, name))
	}
	r := runInProcess(t, nil, deployEnvVars, n.args("--vmid", "150", img)...)
	if r.code != 1 || !strings.Contains(r.stdout, "No space left on device") {
		t.Errorf("exit %d, %q", r.code, r.stdout)
	}
	if n.calls("qmrestore") != "" {
		t.Error("qmrestore ran after a failed upload")
	}
}

func TestDeployTargetsFile(t *testing.T) {
	n := newNode(t)
	// web1 restores onto "fast", which the node must have: a real node
	// refuses a storage it lacks.
	cn := nodetest.DefaultClusterNode(n.Name)
	cn.Storages = append(cn.Storages, nodetest.ClusterStorage{Name: "fast", Type: "lvmthin", Content: []string{"images"}, MaxDisk: 100 << 30})
	n.SetCluster(t, cn)
	img := testImage(t, t.TempDir(), "nixos.raw", 1<<20)
	n.AddGuest(t, 203, "qemu", "", "name: taken\n")
	host := n.Host()
	targets := writeFile(t, filepath.Join(t.TempDir(), "targets.json"), []byte(fmt.Sprintf(`[
  {"name": "web1", "host": %[1]q, "vmid": 201, "storage": "fast", "tags": ["web"], "memory": 2048, "start": true},
  {"name": "db1",  "host": %[1]q, "vmid": 202, "tags": ["db"]},
  {"name": "web2", "host": %[1]q, "vmid": 203, "tags": ["web"], "vm-tags": ["nixos", "web"], "via": "ssh-stream"}
]`, host)))
	args := []string{"deploy", "-q", "--targets", targets, "--tag", "web", "--parallel", "2", "--known-hosts", n.SSH.KnownHostsFile,
		"--identity", n.SSH.ClientKeyFile, "--dump-dir", n.Dump, img}
	r := runInProcess(t, nil, deployEnvVars, args...)
	if r.code != 1 {
		t.Errorf("exit %d with one failing target", r.code)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "web1") || !strings.Contains(lines[1], " ok ") ||
		!strings.Contains(lines[2], "web2") || !strings.Contains(lines[2], "ssh-stream") || !strings.Contains(lines[2], "FAILED") || !strings.Contains(lines[2], "already exists") {
		t.Errorf("table:\n%s", r.stdout)
	}
	_, conf := restoredDisk(t, n.Received(201))
	if !strings.Contains(conf, "memory: 2048") || !strings.Contains(conf, "fast:vm-201-disk-0") {
		t.Errorf("web1's config did not take the file's settings:\n%s", conf)
	}
	if _, err := os.Stat(n.Received(202)); err == nil {
		t.Error("db1 was deployed without its tag")
	}

	t.Run("dry run touches nothing", func(t *testing.T) {
		r := runInProcess(t, nil, deployEnvVars, "deploy", "--targets", targets, "--dry-run", "--host", "root@pve.invalid", img).mustSucceed(t)
		if strings.Count(r.stdout, " via ") != 3 || strings.Count(r.stdout, "root@pve.invalid") != 3 || !strings.Contains(r.stdout, "web2: VM 203 on root@pve.invalid via ssh-stream") ||
			!strings.Contains(r.stdout, "memory: 2048") {
			t.Errorf("plan:\n%s", r.stdout)
		}
		r = runInProcess(t, nil, deployEnvVars, "deploy", "--targets", targets, "--dry-run", "--json", "--target", "db1", img).mustSucceed(t)
		var plan struct {
			Targets []struct {
				Via    string
				Steps  []string
				Config string
			}
		}
		if err := json.Unmarshal([]byte(r.stdout), &plan); err != nil || len(plan.Targets) != 1 || plan.Targets[0].Via != "ssh" || len(plan.Targets[0].Steps) < 3 {
			t.Errorf("--dry-run --json: %s (%v)", r.stdout, err)
		}
	})
	t.Run("hostile values", func(t *testing.T) {
		pwned := filepath.Join(t.TempDir(), "pwned")
		bad := writeFile(t, filepath.Join(t.TempDir(), "t.json"), []byte(fmt.Sprintf(`[{"host": %q, "vmid": 300, "dump-dir": "/tmp/x$(touch %s)"}]`, host, pwned)))
		runInProcess(t, nil, deployEnvVars, "deploy", "-q", "--targets", bad, "--known-hosts", n.SSH.KnownHostsFile, "--identity", n.SSH.ClientKeyFile, img)
		if _, err := os.Stat(pwned); err == nil {
			t.Error("a dump-dir from the targets file ran a command on the node")
		}
		bad = writeFile(t, filepath.Join(t.TempDir(), "t.json"), []byte(fmt.Sprintf(`[{"host": %q, "vmid": 300, "storage": "x;touch %s"}]`, host, pwned)))
		if r := runInProcess(t, nil, deployEnvVars, "deploy", "--targets", bad, img); r.code != 2 || !strings.Contains(r.stderr, "not a Proxmox storage ID") {
			t.Errorf("hostile storage: exit %d %q", r.code, r.stderr)
		}
		bad = writeFile(t, filepath.Join(t.TempDir(), "t.json"), []byte(`[{"host": "h", "vmid": 300, "token": "x"}]`))
		if r := runInProcess(t, nil, deployEnvVars, "deploy", "--targets", bad, img); r.code != 2 || !strings.Contains(r.stderr, `targets[0].token: unknown key`) {
			t.Errorf("unknown key: exit %d %q", r.code, r.stderr)
		}
		bad = writeFile(t, filepath.Join(t.TempDir(), "t.json"), []byte(`[{"host": "h", "vmid": 99}]`))
		if r := runInProcess(t, nil, deployEnvVars, "deploy", "--targets", bad, img); r.code != 2 || !strings.Contains(r.stderr, "VM ID 99") {
			t.Errorf("vmid 99: exit %d %q", r.code, r.stderr)
		}
	})
}

func TestDeployQcow2Source(t *testing.T) {
	n := newNode(t)
	runInProcess(t, nil, deployEnvVars, n.args("--vmid", "160", "--via", "ssh-stream", demoImage)...).mustSucceed(t)
	disk, conf := restoredDisk(t, n.Received(160))
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
