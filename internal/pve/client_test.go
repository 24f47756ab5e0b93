package pve_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmatool/vmatool/internal/pve"
	"github.com/vmatool/vmatool/internal/pve/pvesim"
	"github.com/vmatool/vmatool/internal/remote"
	"github.com/vmatool/vmatool/internal/remote/sshtest"
	"github.com/vmatool/vmatool/qcow2"
	"github.com/vmatool/vmatool/vma"
)

const poll = 5 * time.Millisecond

func secretOf(token string) string {
	_, s, _ := strings.Cut(token, "=")
	return s
}

// noLeak fails the test if err, printed any way, shows the secret.
func noLeak(t *testing.T, secret string, err error) error {
	t.Helper()
	if err != nil {
		msg := err.Error() + fmt.Sprintf(" %+v %#v %q", err, err, err)
		if strings.Contains(msg, secret) {
			t.Fatalf("error leaks the token secret: %s", msg)
		}
	}
	return err
}

func token(t *testing.T, s string) pve.Token {
	t.Helper()
	tok, err := pve.ParseToken(s)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func newClient(t *testing.T, sim *pvesim.Server, opts ...pve.Option) *pve.Client {
	t.Helper()
	if opts == nil {
		opts = []pve.Option{pve.WithTLSFingerprint(sim.Fingerprint)}
	}
	c, err := pve.New(sim.URL, token(t, sim.Token), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTLSAndAuth(t *testing.T) {
	sim := pvesim.New(t)
	secret := secretOf(sim.Token)
	wrongPin := strings.Repeat("00:", 31) + "00"
	lowerPin := strings.ToLower(strings.ReplaceAll(sim.Fingerprint, ":", ""))
	tests := []struct {
		name       string
		token      string
		opts       []pve.Option
		wantErr    error
		wantReason string
	}{
		{name: "pinned fingerprint", opts: []pve.Option{pve.WithTLSFingerprint(sim.Fingerprint)}},
		{name: "pinned fingerprint, lower case without colons", opts: []pve.Option{pve.WithTLSFingerprint(lowerPin)}},
		{name: "trusted CA", opts: []pve.Option{pve.WithRootCAs(sim.CertPool())}},
		{name: "default verification refuses a self-signed certificate", opts: []pve.Option{}, wantErr: pve.ErrUntrustedCertificate},
		{name: "wrong pin", opts: []pve.Option{pve.WithTLSFingerprint(wrongPin)}, wantErr: pve.ErrFingerprintMismatch},
		{name: "wrong token", token: "root@pam!vmatool=00000000-1111-2222-3333-444444444444",
			opts: []pve.Option{pve.WithTLSFingerprint(sim.Fingerprint)}, wantErr: pve.ErrUnauthorized, wantReason: "Authentication failed!"},
		{name: "wrong token id", token: "root@pam!other=" + secret,
			opts: []pve.Option{pve.WithTLSFingerprint(sim.Fingerprint)}, wantErr: pve.ErrUnauthorized, wantReason: "Authentication failed!"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := tt.token
			if tok == "" {
				tok = sim.Token
			}
			c, err := pve.New(sim.URL, token(t, tok), tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Version(context.Background())
			noLeak(t, secret, err)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Version: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			var certErr *pve.CertificateError
			if errors.As(err, &certErr) && (certErr.Fingerprint != sim.Fingerprint || !strings.Contains(err.Error(), sim.Fingerprint)) {
				t.Errorf("certificate error does not show the presented fingerprint %s: %v", sim.Fingerprint, err)
			}
			var apiErr *pve.APIError
			if tt.wantReason != "" && (!errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Message != tt.wantReason) {
				t.Errorf("APIError = %+v", apiErr)
			}
		})
	}
	if _, err := pve.New(sim.URL, token(t, sim.Token), pve.WithTLSFingerprint("12:34")); err == nil {
		t.Error("New accepted a short fingerprint")
	}
	if _, err := pve.New(sim.URL, pve.Token{}); err == nil {
		t.Error("New accepted an empty token")
	}
}

// TestClientHidesSecret prints the client every way, after use.
func TestClientHidesSecret(t *testing.T) {
	sim := pvesim.New(t)
	c := newClient(t, sim)
	if _, err := c.Version(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d"} {
		for _, v := range []any{c, *c, []any{c}, struct{ C *pve.Client }{c}} {
			if out := fmt.Sprintf(verb, v); strings.Contains(out, secretOf(sim.Token)) {
				t.Fatalf("%s prints the secret: %s", verb, out)
			}
		}
	}
}

func TestClusterView(t *testing.T) {
	small, big := pvesim.DefaultNode("pve1"), pvesim.DefaultNode("pve2")
	small.Mem = 60 << 30
	big.MaxCPU = 64
	big.Storages[0].Content = []string{"iso", "import"}
	sim := pvesim.New(t, pvesim.WithNodes(small, big), pvesim.WithVersion("8.4.1"))
	sim.AddVM(pvesim.VM{VMID: 100, Name: "web", Template: true})
	sim.AddVM(pvesim.VM{VMID: 101, Type: "lxc", Node: "pve2", Status: "running"})
	c := newClient(t, sim)
	ctx := context.Background()

	v, err := c.Version(ctx)
	if err != nil || v.Version != "8.4.1" || v.Release != "8.4" || !v.AtLeast(8, 4) || v.AtLeast(8, 5) || !v.AtLeast(7, 9) {
		t.Errorf("Version = %+v, %v", v, err)
	}
	if v, err := c.NodeVersion(ctx, "pve2"); err != nil || v.Version != "8.4.1" {
		t.Errorf("NodeVersion = %+v, %v", v, err)
	}
	nodes, err := c.Nodes(ctx)
	if err != nil || len(nodes) != 2 || nodes[0].Name != "pve1" || nodes[0].FreeMem() != 4<<30 || nodes[1].MaxCPU != 64 {
		t.Errorf("Nodes = %+v, %v", nodes, err)
	}
	if cn, err := c.ClusterNodes(ctx); err != nil || len(cn) != 2 || cn[1].FreeMem() != 56<<30 {
		t.Errorf("ClusterNodes = %+v, %v", cn, err)
	}
	guests, err := c.Guests(ctx)
	if err != nil || len(guests) != 2 || guests[0] != (pve.Guest{VMID: 100, Type: "qemu", Node: "pve1", Name: "web", Status: "stopped", Template: true}) ||
		guests[1].Type != "lxc" || guests[1].Node != "pve2" {
		t.Errorf("Guests = %+v, %v", guests, err)
	}
	cs, err := c.ClusterStorages(ctx)
	if err != nil || len(cs) != 4 || cs[2].Node != "pve2" || cs[2].Name != "local" || !cs[2].Holds("import") || cs[0].Holds("import") || cs[3].Type != "lvmthin" {
		t.Errorf("ClusterStorages = %+v, %v", cs, err)
	}
	ss, err := c.Storages(ctx, "pve2")
	if err != nil || len(ss) != 2 || !ss[0].Holds("import") || ss[1].Avail != 350<<30 || !ss[1].Active {
		t.Errorf("Storages = %+v, %v", ss, err)
	}
	if st, err := c.StorageStatus(ctx, "pve1", "local-lvm"); err != nil || st.Name != "local-lvm" || st.Type != "lvmthin" || !st.Holds("images") {
		t.Errorf("StorageStatus = %+v, %v", st, err)
	}

	blind := pvesim.New(t, pvesim.WithoutVMAudit())
	blind.AddVM(pvesim.VM{VMID: 100})
	bc := newClient(t, blind)
	if g, err := bc.Guests(ctx); err != nil || len(g) != 0 {
		t.Errorf("a token without VM.Audit sees %v, %v", g, err)
	}
	if _, err := bc.VMStatus(ctx, "pve", 100); !errors.Is(err, pve.ErrForbidden) {
		t.Errorf("VMStatus without VM.Audit: %v", err)
	}
}

const archive = "local:backup/vzdump-qemu-100-2024_01_02-03_04_05.vma.zst"

// smallArchive is a zstd-compressed VMA, as vzdump writes one: a config
// whose map line puts the one 1 MiB disk, of the given bytes, on
// local-lvm. The simulator restores it as a node would, and fails on
// anything that is no VMA.
func smallArchive(t *testing.T, fill byte) []byte {
	t.Helper()
	var raw bytes.Buffer
	w, err := vma.NewWriter(&raw)
	if err != nil {
		t.Fatal(err)
	}
	conf := "boot: order=scsi0\nmemory: 512\nname: small\nnet0: virtio=BC:24:11:00:00:07,bridge=vmbr0\n" +
		"scsi0: local-lvm:vm-100-disk-0,size=1M\n#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:\n"
	if err := w.AddConfig("qemu-server.conf", []byte(conf)); err != nil {
		t.Fatal(err)
	}
	id, err := w.AddDevice("drive-scsi0", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for c := uint32(0); c < 16; c++ {
		if err := w.WriteCluster(id, c, bytes.Repeat([]byte{fill}, vma.ClusterSize)); err != nil {
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
	if _, err := zw.Write(raw.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return zst.Bytes()
}

func TestRestore(t *testing.T) {
	ctx := context.Background()
	sim := pvesim.New(t)
	sim.AddVolume("local", pvesim.Volume{VolID: archive, Data: smallArchive(t, 0x5a)})
	c := newClient(t, sim)

	upid, err := c.RestoreVM(ctx, sim.Node, pve.RestoreOptions{VMID: 100, Archive: archive, Storage: "local-lvm", Start: true, Unique: true})
	if err != nil || upid.Type != "qmrestore" || upid.ID != "100" || upid.Node != "pve" {
		t.Fatalf("RestoreVM = %+v, %v", upid, err)
	}
	st, err := c.WaitTask(ctx, upid, poll)
	if err != nil || !st.Succeeded() || st.User != "root@pam" {
		t.Fatalf("WaitTask = %+v, %v", st, err)
	}
	if s, err := c.VMStatus(ctx, sim.Node, 100); err != nil || s.Status != pve.StatusRunning || s.Template || s.Lock != "" || s.Name != "small" {
		t.Errorf("VMStatus = %+v, %v", s, err)
	}
	if conf, err := c.VMConfig(ctx, sim.Node, 100); err != nil || conf["scsi0"] != "local-lvm:vm-100-disk-0,size=4M" || conf["net0"] == "virtio=BC:24:11:00:00:07,bridge=vmbr0" {
		t.Errorf("restored config (unique: a new MAC address) = %v, %v", conf, err)
	}
	if data, ok := sim.VolumeData(sim.Node, "local-lvm:vm-100-disk-0"); !ok || !bytes.Equal(data[:1<<20], bytes.Repeat([]byte{0x5a}, 1<<20)) {
		t.Errorf("the restored disk does not hold the archive's")
	}
	call := sim.CallsTo("POST", "/nodes/pve/qemu")[0]
	if call.Params.Get("start") != "1" || call.Params.Get("unique") != "1" || call.Params.Has("force") || call.Params.Get("vmid") != "100" {
		t.Errorf("restore sent %v", call.Params)
	}

	t.Run("exists", func(t *testing.T) {
		sim.AddVM(pvesim.VM{VMID: 200, Type: "lxc"})
		for _, id := range []int{100, 200} {
			before := len(sim.Tasks())
			_, err := c.RestoreVM(ctx, sim.Node, pve.RestoreOptions{VMID: id, Archive: archive})
			if !errors.Is(err, pve.ErrVMExists) || errors.Is(err, pve.ErrVMNotFound) {
				t.Errorf("VM %d: %v", id, err)
			}
			if len(sim.Tasks()) != before {
				t.Error("a refused restore started a task")
			}
		}
	})
	t.Run("force over a running VM", func(t *testing.T) {
		upid, err := c.RestoreVM(ctx, sim.Node, pve.RestoreOptions{VMID: 100, Archive: archive, Force: true})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.WaitTask(ctx, upid, poll)
		var te *pve.TaskError
		if !errors.As(err, &te) || te.ExitStatus != "unable to restore VM 100 - vm is running" || !errors.Is(err, pve.ErrTaskFailed) {
			t.Fatalf("err = %v", err)
		}
		if te.Log[len(te.Log)-1] != "TASK ERROR: unable to restore VM 100 - vm is running" {
			t.Errorf("log tail %q", te.Log)
		}
	})
	t.Run("bad storage leaves the config", func(t *testing.T) {
		upid, err := c.RestoreVM(ctx, sim.Node, pve.RestoreOptions{VMID: 300, Archive: archive, Storage: "nowhere"})
		if err != nil {
			t.Fatalf("a bad storage must fail inside the task: %v", err)
		}
		_, err = c.WaitTask(ctx, upid, poll)
		if !errors.Is(err, pve.ErrTaskFailed) || !strings.Contains(err.Error(), "storage 'nowhere' does not exist") ||
			!strings.Contains(err.Error(), "state is NOT cleaned up") {
			t.Fatalf("err = %v", err)
		}
		// The backup hints failed: restore_vma_archive had not yet
		// replaced the config create_and_lock_config made, empty.
		conf, err := c.VMConfig(ctx, sim.Node, 300)
		if err != nil || len(conf) != 0 {
			t.Errorf("config left behind = %v, %v", conf, err)
		}
		if _, err := c.RestoreVM(ctx, sim.Node, pve.RestoreOptions{VMID: 300, Archive: archive}); !errors.Is(err, pve.ErrVMExists) {
			t.Errorf("second attempt: %v", err)
		}
		upid, err = c.DeleteVM(ctx, sim.Node, 300)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.WaitTask(ctx, upid, poll); err != nil {
			t.Fatal(err)
		}
		if _, err := c.VMStatus(ctx, sim.Node, 300); !errors.Is(err, pve.ErrVMNotFound) {
			t.Errorf("after DeleteVM: %v", err)
		}
		if call := sim.CallsTo("DELETE", "/nodes/pve/qemu/300"); len(call) != 1 || call[0].Params.Get("purge") != "1" || call[0].Params.Get("destroy-unreferenced-disks") != "1" {
			t.Errorf("delete sent %+v", call)
		}
	})
	t.Run("an archive that is no VMA fails in vma extract", func(t *testing.T) {
		const bad = "local:backup/vzdump-qemu-400-2024_01_02-03_04_05.vma"
		sim.AddVolume("local", pvesim.Volume{VolID: bad, Data: []byte("VMA")})
		upid, err := c.RestoreVM(ctx, sim.Node, pve.RestoreOptions{VMID: 400, Archive: bad, Storage: "local-lvm"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.WaitTask(ctx, upid, poll)
		var te *pve.TaskError
		if !errors.As(err, &te) || !regexp.MustCompile(`^command 'set -o pipefail && vma extract -v -r /var/tmp/vzdumptmp(\d+)\.fifo /var/lib/vz/dump/vzdump-qemu-400-2024_01_02-03_04_05\.vma /var/tmp/vzdumptmp(\d+)' failed: got signal 5$`).MatchString(te.ExitStatus) ||
			!slices.Contains(te.Log, "vma: can't read vma header - got EOF") {
			t.Fatalf("err = %v", err)
		}
		if conf, err := c.VMConfig(ctx, sim.Node, 400); err != nil || len(conf) != 0 {
			t.Errorf("config left behind = %v, %v", conf, err)
		}
		if vols := sim.Volumes("local-lvm"); len(vols) != 1 {
			t.Errorf("volumes %v", vols)
		}
	})
	t.Run("running VM cannot be deleted", func(t *testing.T) {
		if _, err := c.DeleteVM(ctx, sim.Node, 100); err == nil || !strings.Contains(err.Error(), "VM 100 is running - destroy failed") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestTaskLogTail(t *testing.T) {
	ctx := context.Background()
	sim := pvesim.New(t)
	sim.AddVolume("local", pvesim.Volume{VolID: archive, Data: smallArchive(t, 1)})
	var log []string
	for i := 1; i <= 40; i++ {
		log = append(log, fmt.Sprintf("progress %d%%", i))
	}
	sim.FailRestore(100, "command 'vma extract' failed: exit code 133", log...)
	c := newClient(t, sim)
	upid, err := c.RestoreVM(ctx, sim.Node, pve.RestoreOptions{VMID: 100, Archive: archive})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.WaitTask(ctx, upid, poll)
	var te *pve.TaskError
	if !errors.As(err, &te) || len(te.Log) != 20 || te.Log[19] != "TASK ERROR: command 'vma extract' failed: exit code 133" || te.Log[17] != "progress 40%" {
		t.Fatalf("TaskError = %+v (%v)", te, err)
	}
	if !strings.Contains(err.Error(), "task log (last lines):\n  progress 23%") {
		t.Errorf("Error() = %s", err)
	}
	lines, err := c.TaskLog(ctx, upid, 2, 3)
	if err != nil || len(lines) != 3 || lines[0].N != 3 {
		t.Errorf("TaskLog = %+v, %v", lines, err)
	}
}

func TestWaitTask(t *testing.T) {
	ctx := context.Background()
	sim := pvesim.New(t, pvesim.WithTaskPolls(3))
	sim.AddVM(pvesim.VM{VMID: 100})
	c := newClient(t, sim)
	start := func() pve.UPID {
		upid, err := c.StartVM(ctx, sim.Node, 100)
		if err != nil {
			t.Fatal(err)
		}
		return upid
	}
	statusPath := func(u pve.UPID) string { return "/nodes/pve/tasks/" + u.String() + "/status" }

	t.Run("a lost poll is tolerated", func(t *testing.T) {
		sim.AddVM(pvesim.VM{VMID: 100})
		upid := start()
		sim.FailNext("GET", statusPath(upid), http.StatusServiceUnavailable, "proxy hiccup")
		sim.FailNext("GET", statusPath(upid), http.StatusInternalServerError, "got timeout")
		if st, err := c.WaitTask(ctx, upid, poll); err != nil || !st.Succeeded() {
			t.Fatalf("WaitTask = %+v, %v", st, err)
		}
	})
	t.Run("too many lost polls", func(t *testing.T) {
		sim.AddVM(pvesim.VM{VMID: 100})
		upid := start()
		for i := 0; i < 4; i++ {
			sim.FailNext("GET", statusPath(upid), http.StatusInternalServerError, "got timeout")
		}
		if _, err := c.WaitTask(ctx, upid, poll); err == nil || !strings.Contains(err.Error(), "got timeout") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("unknown task is refused at once", func(t *testing.T) {
		upid, _ := pve.ParseUPID("UPID:pve:00009999:00000001:65A1B2C3:qmstart:100:root@pam!vmatool:")
		_, err := c.WaitTask(ctx, upid, poll)
		var apiErr *pve.APIError
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Errors["upid"] != "no such task" {
			t.Fatalf("err = %v", err)
		}
		if n := len(sim.CallsTo("GET", statusPath(upid))); n != 1 {
			t.Errorf("%d polls for an unknown task", n)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		sim.AddVM(pvesim.VM{VMID: 100})
		upid := start()
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := c.WaitTask(ctx, upid, poll); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("start fails inside the task", func(t *testing.T) {
		upid, err := c.StartVM(ctx, sim.Node, 999)
		if err != nil {
			t.Fatalf("start has no up-front check: %v", err)
		}
		if _, err := c.WaitTask(ctx, upid, poll); !errors.Is(err, pve.ErrTaskFailed) || !strings.Contains(err.Error(), "999.conf' does not exist") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestMakeTemplate(t *testing.T) {
	ctx := context.Background()
	sim := pvesim.New(t)
	sim.AddVM(pvesim.VM{VMID: 100})
	sim.AddVM(pvesim.VM{VMID: 101})
	sim.AddVM(pvesim.VM{VMID: 102, Status: "running"})
	c := newClient(t, sim)
	if err := c.MakeTemplate(ctx, sim.Node, 100, poll); err != nil {
		t.Fatal(err)
	}
	if vm, _ := sim.VM(100); !vm.Template {
		t.Error("not a template")
	}
	sim.FailTemplate(101, "unable to create template: lvrename failed")
	if err := c.MakeTemplate(ctx, sim.Node, 101, poll); !errors.Is(err, pve.ErrTaskFailed) {
		t.Errorf("failed template task: %v", err)
	}
	if err := c.MakeTemplate(ctx, sim.Node, 102, poll); err == nil || !strings.Contains(err.Error(), "if VM is running") {
		t.Errorf("running VM: %v", err)
	}
	if err := c.MakeTemplate(ctx, sim.Node, 100, poll); err == nil || !strings.Contains(err.Error(), "template to a template") {
		t.Errorf("template again: %v", err)
	}
}

// qcow2Image is a real qcow2 image of qcow2Raw, which the simulator
// checks and converts as qemu-img would.
var qcow2Raw, qcow2Image = makeQcow2()

func makeQcow2() (raw, image []byte) {
	raw = bytes.Repeat([]byte{0, 1, 2, 3}, 300032) // a whole number of sectors, as qemu counts disks
	f, err := os.CreateTemp("", "pve-test-*.qcow2")
	if err != nil {
		panic(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	w, err := qcow2.NewWriter(f, int64(len(raw)))
	if err == nil {
		err = w.WriteFrom(context.Background(), bytes.NewReader(raw), nil)
	}
	if err == nil {
		err = w.Close()
	}
	if err == nil {
		image, err = os.ReadFile(f.Name())
	}
	if err != nil {
		panic(err)
	}
	return raw, image
}

func importNode() pvesim.NodeSpec {
	n := pvesim.DefaultNode("pve")
	n.Storages[0].Content = append(n.Storages[0].Content, "import")
	return n
}

// TestUploadAndImport uploads a qcow2, creates a VM that imports it, and
// compares the new disk with the file, byte for byte.
func TestUploadAndImport(t *testing.T) {
	ctx := context.Background()
	sim := pvesim.New(t, pvesim.WithNodes(importNode()))
	c := newClient(t, sim)
	var progress int64
	upid, err := c.Upload(ctx, sim.Node, "local", pve.Upload{Content: "import", Filename: "nixos.qcow2",
		Body: bytes.NewReader(qcow2Image), Size: int64(len(qcow2Image)),
		ChecksumAlgorithm: "sha256", Checksum: sha256Hex(qcow2Image), Progress: func(n int64) { progress = n }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitTask(ctx, upid, poll); err != nil {
		t.Fatal(err)
	}
	if progress != int64(len(qcow2Image)) {
		t.Errorf("progress %d", progress)
	}
	if up := sim.CallsTo("POST", "/nodes/pve/storage/local/upload"); len(up) != 1 || up[0].Params.Get("filename") != "nixos.qcow2" || up[0].Params.Get("checksum-algorithm") != "sha256" {
		t.Errorf("upload call %+v", up)
	}
	vols, err := c.StorageContent(ctx, sim.Node, "local", "import")
	if err != nil || len(vols) != 1 || vols[0].VolID != "local:import/nixos.qcow2" || vols[0].Size != uint64(len(qcow2Image)) || vols[0].Format != "qcow2" {
		t.Fatalf("StorageContent = %+v, %v", vols, err)
	}
	upid, err = c.CreateVM(ctx, sim.Node, 150, map[string]string{"name": "nixos", "memory": "2048", "agent": "1",
		"scsi0": "local-lvm:0,import-from=local:import/nixos.qcow2,discard=on", "net0": "virtio,bridge=vmbr0"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitTask(ctx, upid, poll); err != nil {
		t.Fatal(err)
	}
	conf, err := c.VMConfig(ctx, sim.Node, 150)
	if err != nil || conf["name"] != "nixos" || !strings.HasPrefix(conf["scsi0"], "local-lvm:vm-150-disk-0,discard=on,size=") {
		t.Fatalf("VMConfig = %v, %v", conf, err)
	}
	disk, ok := sim.VolumeData(sim.Node, "local-lvm:vm-150-disk-0")
	if !ok || !bytes.Equal(disk, qcow2Raw) {
		t.Errorf("the imported disk differs from the upload's virtual disk (%d bytes)", len(disk))
	}
	upid, err = c.DeleteVolume(ctx, sim.Node, "local", "local:import/nixos.qcow2")
	if err != nil || upid.Type != "imgdel" {
		t.Fatalf("DeleteVolume = %v, %v", upid, err)
	}
	if _, err := c.WaitTask(ctx, upid, poll); err != nil {
		t.Fatal(err)
	}
	if v := sim.Volumes("local"); len(v) != 0 {
		t.Errorf("left %v", v)
	}
	if _, err := c.CreateVM(ctx, sim.Node, 150, map[string]string{"memory": "512"}); !errors.Is(err, pve.ErrVMExists) {
		t.Errorf("create over an existing VM: %v", err)
	}
}

func TestUploadRefused(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name, version, storage string
		node                   pvesim.NodeSpec
		param, msg             string
	}{
		{"PVE 8.3 takes no qcow2", "8.3.4", "local", importNode(), "filename", "invalid filename or wrong extension"},
		{"PVE 8.2 has no import", "8.2.7", "local", importNode(), "content", "value 'import' does not have a value in the enumeration 'iso, vztmpl'"},
		{"storage without import", "8.4.1", "local", pvesim.DefaultNode("pve"), "", "storage 'local' does not support 'import' content"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sim := pvesim.New(t, pvesim.WithNodes(tt.node), pvesim.WithVersion(tt.version))
			c := newClient(t, sim)
			_, err := c.Upload(ctx, sim.Node, tt.storage, pve.Upload{Content: "import", Filename: "nixos.qcow2", Body: bytes.NewReader(qcow2Image), Size: int64(len(qcow2Image))})
			var apiErr *pve.APIError
			if !errors.As(err, &apiErr) || (tt.param != "" && apiErr.Errors[tt.param] != tt.msg) || (tt.param == "" && apiErr.Message != tt.msg) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

// endless never ends, so only cancellation stops an upload of it.
type endless struct{}

func (endless) Read(p []byte) (int, error) { return len(p), nil }

func TestUploadCancel(t *testing.T) {
	sim := pvesim.New(t, pvesim.WithNodes(importNode()))
	c := newClient(t, sim)
	t.Run("the body fails", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() {
			_, err := c.Upload(ctx, sim.Node, "local", pve.Upload{Content: "import", Filename: "big.raw", Body: endless{}, Size: 1 << 40,
				Progress: func(n int64) {
					if n > 4<<20 {
						cancel()
					}
				}})
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("upload not cancelled")
		}
	})
	t.Run("a stalled body", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := c.Upload(ctx, sim.Node, "local", pve.Upload{Content: "import", Filename: "stall.raw", Body: pr, Size: 1 << 20})
			done <- err
		}()
		pw.Write(make([]byte, 1000))
		// Let the sender block reading the pipe, where only the
		// request's context can stop it.
		time.Sleep(100 * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("upload not cancelled")
		}
	})
}

// TestUploadCancelStalledSocket: a server that stops reading leaves the
// sender blocked on the socket, where only the request's context reaches
// it; the body is never read again.
func TestUploadCancelStalledSocket(t *testing.T) {
	release := make(chan struct{})
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer ts.Close()
	defer close(release)
	c, err := pve.New(ts.URL, token(t, "root@pam!vmatool=x"), pve.WithRootCAs(certPool(ts)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var sent atomic.Int64
	done := make(chan error, 1)
	go func() {
		_, err := c.Upload(ctx, "pve", "local", pve.Upload{Content: "import", Filename: "big.raw", Body: endless{}, Size: 1 << 40,
			Progress: func(n int64) { sent.Store(n) }})
		done <- err
	}()
	// Wait until the socket is full: the count stops growing.
	for last := int64(-1); sent.Load() != last; {
		last = sent.Load()
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("upload not cancelled")
	}
}

func certPool(ts *httptest.Server) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ts.Certificate())
	return p
}

func TestAgentAndHA(t *testing.T) {
	ctx := context.Background()
	sim := pvesim.New(t)
	sim.AddVM(pvesim.VM{VMID: 100, Config: map[string]string{"agent": "1"}})
	sim.SetAgent(100, pvesim.Agent{Interfaces: []pvesim.Interface{
		{Name: "lo", IPs: []string{"127.0.0.1/8"}},
		{Name: "ens18", MAC: "bc:24:11:aa:bb:cc", IPs: []string{"192.0.2.7/24", "2001:db8::7/64"}},
	}})
	c := newClient(t, sim)
	if err := c.AgentPing(ctx, sim.Node, 100); err == nil || !strings.Contains(err.Error(), "VM 100 is not running") {
		t.Errorf("ping of a stopped VM: %v", err)
	}
	if err := c.AddHAResource(ctx, 100, pve.HAStarted, ""); err != nil {
		t.Fatal(err)
	}
	if ha := sim.HAResources(); ha["vm:100"] != "started" {
		t.Errorf("HA resources %v", ha)
	}
	upid, err := c.StartVM(ctx, sim.Node, 100)
	if err != nil || upid.Type != "hastart" {
		t.Fatalf("StartVM of an HA VM = %v, %v", upid, err)
	}
	if _, err := c.WaitTask(ctx, upid, poll); err != nil {
		t.Fatal(err)
	}
	if st, err := c.VMStatus(ctx, sim.Node, 100); err != nil || !st.Agent || st.Status != pve.StatusRunning {
		t.Errorf("VMStatus = %+v, %v", st, err)
	}
	if err := c.AgentPing(ctx, sim.Node, 100); err != nil {
		t.Fatal(err)
	}
	ifs, err := c.AgentInterfaces(ctx, sim.Node, 100)
	want := []pve.Interface{{Name: "ens18", MAC: "bc:24:11:aa:bb:cc", Addresses: []pve.IPAddress{{"192.0.2.7", "ipv4", 24}, {"2001:db8::7", "ipv6", 64}}}}
	if err != nil || fmt.Sprint(ifs) != fmt.Sprint(want) {
		t.Errorf("AgentInterfaces = %+v, %v", ifs, err)
	}
	if err := c.AddHAResource(ctx, 100, "", ""); err == nil || !strings.Contains(err.Error(), "already defined") {
		t.Errorf("second AddHAResource: %v", err)
	}
	if upid, err := c.StopVM(ctx, sim.Node, 100); err != nil || upid.Type != "hastop" {
		t.Errorf("StopVM of an HA VM = %v, %v", upid, err)
	} else if _, err := c.WaitTask(ctx, upid, poll); err != nil {
		t.Fatal(err)
	}
	if st, err := c.VMStatus(ctx, sim.Node, 100); err != nil || st.Status != pve.StatusStopped {
		t.Errorf("after StopVM: %+v, %v", st, err)
	}
	sim.AddVM(pvesim.VM{VMID: 101})
	if err := c.AddHAResource(ctx, 101, pve.HAStopped, "prod"); err != nil || sim.HAGroup("vm:101") != "prod" || sim.HAResources()["vm:101"] != "stopped" {
		t.Errorf("AddHAResource in a group: %v, %v", err, sim.HAResources())
	}
}

func TestNamesAreChecked(t *testing.T) {
	sim := pvesim.New(t)
	c := newClient(t, sim)
	ctx := context.Background()
	for _, err := range []error{
		func() error { _, err := c.VMStatus(ctx, "../cluster", 100); return err }(),
		func() error { _, err := c.VMStatus(ctx, "pve", 99); return err }(),
		func() error { _, err := c.Storages(ctx, "pve?x=1"); return err }(),
		func() error { _, err := c.DeleteVolume(ctx, "pve", "local/../x", "local:iso/x.iso"); return err }(),
		func() error {
			_, err := c.Upload(ctx, "pve", "local", pve.Upload{Content: "iso", Filename: "../x.iso", Body: strings.NewReader(""), Size: 0})
			return err
		}(),
	} {
		if err == nil {
			t.Error("a bad name was accepted")
		}
	}
	if n := len(sim.Calls()); n != 0 {
		t.Errorf("%d requests sent for bad names", n)
	}
}

// TestDeployFlow runs the path `vmatool deploy --restore api` takes:
// upload an archive over SSH into the directory behind the simulator's
// "local" storage, restore it through the API, then delete it.
func TestDeployFlow(t *testing.T) {
	node := sshtest.Start(t)
	dumpDir := t.TempDir()
	archive := smallArchive(t, 3)
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
	c := newClient(t, sim)
	vols, err := c.StorageContent(ctx, sim.Node, "local", "backup")
	if err != nil || len(vols) != 1 || vols[0].VolID != "local:backup/"+name || vols[0].Size != uint64(len(archive)) || vols[0].VMID != 120 {
		t.Fatalf("StorageContent = %+v, %v", vols, err)
	}
	upid, err := c.RestoreVM(ctx, sim.Node, pve.RestoreOptions{VMID: 120, Archive: vols[0].VolID, Storage: "local-lvm"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitTask(ctx, upid, poll); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(restored, archive) {
		t.Errorf("restore read %d bytes, want the %d uploaded", len(restored), len(archive))
	}
	if data, _ := sim.VolumeData(sim.Node, "local-lvm:vm-120-disk-0"); len(data) < 1<<20 || !bytes.Equal(data[:1<<20], bytes.Repeat([]byte{3}, 1<<20)) {
		t.Errorf("the restored disk does not hold the uploaded archive's")
	}
	if upid, err = c.DeleteVolume(ctx, sim.Node, "local", vols[0].VolID); err != nil || !strings.HasSuffix(upid.ID, "@local") {
		t.Fatalf("DeleteVolume = %v, %v", upid, err)
	}
	if _, err := c.WaitTask(ctx, upid, poll); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dumpDir, name)); !os.IsNotExist(err) {
		t.Errorf("archive left behind: %v", err)
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestUpdateConfig sets what a restore cannot create: the task allocates
// the EFI vars and TPM state disks with their real sizes and gives a NIC
// without a MAC address one; a failing task changes nothing, and a
// missing VM is refused up front.
func TestUpdateConfig(t *testing.T) {
	ctx := context.Background()
	sim := pvesim.New(t)
	sim.AddVM(pvesim.VM{VMID: 100, Config: map[string]string{"scsi0": "local-lvm:vm-100-disk-0,size=2G"}})
	sim.AddVolume("local-lvm", pvesim.Volume{VolID: "local-lvm:vm-100-disk-0", Content: "images", VMID: 100, Size: 2 << 30})
	c := newClient(t, sim)
	upid, err := c.UpdateConfig(ctx, sim.Node, 100, map[string]string{
		"efidisk0":  "local-lvm:1,efitype=4m,pre-enrolled-keys=0",
		"tpmstate0": "local-lvm:1,version=v2.0",
		"net0":      "virtio,bridge=vmbr0,trunks=10;20",
	})
	if err != nil {
		t.Fatal(err)
	}
	if upid.Type != "qmconfig" {
		t.Errorf("task type %q", upid.Type)
	}
	if _, err := c.WaitTask(ctx, upid, poll); err != nil {
		t.Fatal(err)
	}
	vm, _ := sim.VM(100)
	want := map[string]string{
		// create_efidisk records the volume's size, which LVM-thin rounds
		// up to 4M; print_drive sorts the options after the volume.
		"efidisk0":  "local-lvm:vm-100-disk-1,efitype=4m,pre-enrolled-keys=0,size=4M",
		"tpmstate0": "local-lvm:vm-100-disk-2,size=4M,version=v2.0",
	}
	for k, v := range want {
		if vm.Config[k] != v {
			t.Errorf("%s: %q, want %q", k, vm.Config[k], v)
		}
	}
	if !regexp.MustCompile(`^virtio=BC:24:11:[0-9A-F]{2}:[0-9A-F]{2}:[0-9A-F]{2},bridge=vmbr0,trunks=10;20$`).MatchString(vm.Config["net0"]) {
		t.Errorf("net0 %q has no assigned MAC", vm.Config["net0"])
	}
	vols := sim.Volumes("local-lvm")
	if len(vols) != 3 {
		t.Errorf("volumes %v", vols)
	}

	sim.FailConfig(100, "lvcreate 'pve/vm-100-disk-3' error: insufficient free space")
	upid, err = c.UpdateConfig(ctx, sim.Node, 100, map[string]string{"virtio1": "local-lvm:4"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitTask(ctx, upid, poll); !errors.Is(err, pve.ErrTaskFailed) {
		t.Errorf("failing update: %v", err)
	}
	if vm, _ := sim.VM(100); vm.Config["virtio1"] != "" || len(sim.Volumes("local-lvm")) != 3 {
		t.Errorf("a failed update changed the VM: %v %v", vm.Config, sim.Volumes("local-lvm"))
	}
	if _, err := c.UpdateConfig(ctx, sim.Node, 101, map[string]string{"memory": "512"}); !errors.Is(err, pve.ErrVMNotFound) {
		t.Errorf("missing VM: %v", err)
	}
}
