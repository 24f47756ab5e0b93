package pve_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmatool/vmatool/internal/pve"
	"github.com/vmatool/vmatool/internal/pve/pvesim"
)

const poll = 5 * time.Millisecond

// secretOf returns the secret part of a simulator token.
func secretOf(token string) string {
	_, s, _ := strings.Cut(token, "=")
	return s
}

// errs collects every error a test sees, to check none leaks the secret.
type errs struct {
	t      *testing.T
	secret string
}

func (e errs) check(err error) error {
	if err != nil {
		var msg = err.Error() + fmt.Sprintf(" %+v %#v", err, err)
		if strings.Contains(msg, e.secret) {
			e.t.Fatalf("error leaks the token secret: %s", msg)
		}
	}
	return err
}

func newClient(t *testing.T, sim *pvesim.Server, opts ...pve.Option) *pve.Client {
	t.Helper()
	if opts == nil {
		opts = []pve.Option{pve.WithTLSFingerprint(sim.Fingerprint)}
	}
	c, err := pve.New(sim.URL, sim.Token, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTLSAndAuth(t *testing.T) {
	sim := pvesim.New(t)
	e := errs{t, secretOf(sim.Token)}
	wrongPin := strings.Repeat("00:", 31) + "00"
	lowerPin := strings.ToLower(strings.ReplaceAll(sim.Fingerprint, ":", ""))
	tests := []struct {
		name    string
		token   string
		opts    []pve.Option
		wantErr error
	}{
		{name: "pinned fingerprint", opts: []pve.Option{pve.WithTLSFingerprint(sim.Fingerprint)}},
		{name: "pinned fingerprint, lower case without colons", opts: []pve.Option{pve.WithTLSFingerprint(lowerPin)}},
		{name: "trusted CA", opts: []pve.Option{pve.WithRootCAs(sim.CertPool())}},
		{name: "default verification refuses a self-signed certificate", opts: []pve.Option{},
			wantErr: pve.ErrUntrustedCertificate},
		{name: "wrong pin", opts: []pve.Option{pve.WithTLSFingerprint(wrongPin)}, wantErr: pve.ErrFingerprintMismatch},
		{name: "wrong token", token: "root@pam!vmatool=00000000-1111-2222-3333-444444444444",
			opts: []pve.Option{pve.WithTLSFingerprint(sim.Fingerprint)}, wantErr: pve.ErrUnauthorized},
		{name: "wrong token id", token: "root@pam!other=" + secretOf(sim.Token),
			opts: []pve.Option{pve.WithTLSFingerprint(sim.Fingerprint)}, wantErr: pve.ErrUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := tt.token
			if token == "" {
				token = sim.Token
			}
			c, err := pve.New(sim.URL, token, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Nodes(context.Background())
			e.check(err)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Nodes: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			var certErr *pve.CertificateError
			if errors.As(err, &certErr) && certErr.Fingerprint != sim.Fingerprint {
				t.Errorf("CertificateError.Fingerprint = %s, want %s", certErr.Fingerprint, sim.Fingerprint)
			}
			var apiErr *pve.APIError
			if errors.Is(err, pve.ErrUnauthorized) {
				if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Message != "authentication failure" {
					t.Errorf("APIError = %+v", apiErr)
				}
			}
			t.Logf("%v", err)
		})
	}
	if _, err := pve.New(sim.URL, "not a token "+secretOf(sim.Token)); e.check(err) == nil {
		t.Error("New accepted a malformed token")
	}
	if _, err := pve.New(sim.URL, sim.Token, pve.WithTLSFingerprint("12:34")); err == nil {
		t.Error("New accepted a short fingerprint")
	}
}

func TestVMStatus(t *testing.T) {
	sim := pvesim.New(t)
	sim.AddVM(pvesim.VM{VMID: 100, Name: "web", Status: "running"})
	sim.AddVM(pvesim.VM{VMID: 9000, Name: "tmpl", Template: true})
	c := newClient(t, sim)
	ctx := context.Background()
	tests := []struct {
		node    string
		vmid    int
		want    string
		tmpl    bool
		wantErr error
	}{
		{node: "pve", vmid: 100, want: pve.StatusRunning},
		{node: "pve", vmid: 9000, want: pve.StatusStopped, tmpl: true},
		{node: "pve", vmid: 101, wantErr: pve.ErrVMNotFound},
	}
	for _, tt := range tests {
		st, err := c.VMStatus(ctx, tt.node, tt.vmid)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("VMStatus(%d) err = %v, want %v", tt.vmid, err, tt.wantErr)
			}
			var apiErr *pve.APIError
			if !errors.As(err, &apiErr) || !strings.Contains(apiErr.Message, "qemu-server/101.conf' does not exist") {
				t.Errorf("APIError = %+v", apiErr)
			}
			continue
		}
		if err != nil || st.Status != tt.want || bool(st.Template) != tt.tmpl || st.VMID != tt.vmid {
			t.Errorf("VMStatus(%d) = %+v, %v", tt.vmid, st, err)
		}
	}
	vms, err := c.ClusterVMs(ctx)
	if err != nil || len(vms) != 2 || vms[0].VMID != 100 || vms[0].Node != "pve" || !bool(vms[1].Template) {
		t.Errorf("ClusterVMs = %+v, %v", vms, err)
	}
	if _, err := c.VMStatus(ctx, "nosuchnode", 100); err == nil || errors.Is(err, pve.ErrVMNotFound) {
		t.Errorf("unknown node: %v", err)
	}
	calls := len(sim.Calls())
	if _, err := c.VMStatus(ctx, "", 100); err == nil || len(sim.Calls()) != calls {
		t.Errorf("empty node: err %v, %d requests sent", err, len(sim.Calls())-calls)
	}
}

func TestRestore(t *testing.T) {
	const archive = "local:backup/vzdump-qemu-100-2024_01_02-03_04_05.vma.zst"
	failLog := make([]string, 40)
	for i := range failLog {
		failLog[i] = fmt.Sprintf("progress %d%%", i)
	}
	failLog = append(failLog, "vma: restore failed - short read", "command 'zstd -q -d -c ... | vma extract' failed: exit code 133")
	const failStatus = "unable to restore VM 100 - command 'set -o pipefail && zstd ...' failed: exit code 133"

	tests := []struct {
		name       string
		setup      func(*pvesim.Server)
		opts       pve.RestoreOptions
		wantErr    error  // from RestoreVM
		wantTask   error  // from WaitTask
		wantInErr  string // in the error text
		wantLog    []string
		wantStatus string // the VM's status afterwards; "" for no VM
	}{
		{name: "new VM", opts: pve.RestoreOptions{VMID: 100, Archive: archive, Storage: "local"}, wantStatus: "stopped"},
		{name: "new VM, start", opts: pve.RestoreOptions{VMID: 100, Archive: archive, Start: true, Unique: true}, wantStatus: "running"},
		{name: "exists without force",
			setup:   func(s *pvesim.Server) { s.AddVM(pvesim.VM{VMID: 100}) },
			opts:    pve.RestoreOptions{VMID: 100, Archive: archive},
			wantErr: pve.ErrVMExists, wantInErr: "unable to restore VM 100 - VM 100 already exists on node 'pve'",
			wantStatus: "stopped"},
		{name: "exists with force",
			setup:      func(s *pvesim.Server) { s.AddVM(pvesim.VM{VMID: 100, Name: "old"}) },
			opts:       pve.RestoreOptions{VMID: 100, Archive: archive, Force: true},
			wantStatus: "stopped"},
		{name: "force over a running VM",
			setup:    func(s *pvesim.Server) { s.AddVM(pvesim.VM{VMID: 100, Status: "running"}) },
			opts:     pve.RestoreOptions{VMID: 100, Archive: archive, Force: true},
			wantTask: pve.ErrTaskFailed, wantInErr: "unable to restore VM 100 - vm is running", wantStatus: "running"},
		{name: "task fails",
			setup:    func(s *pvesim.Server) { s.FailRestore(100, failStatus, failLog...) },
			opts:     pve.RestoreOptions{VMID: 100, Archive: archive},
			wantTask: pve.ErrTaskFailed, wantInErr: failStatus,
			wantLog: []string{"vma: restore failed - short read", failLog[len(failLog)-1], "TASK ERROR: " + failStatus}},
		{name: "missing archive", opts: pve.RestoreOptions{VMID: 100, Archive: "local:backup/nope.vma"},
			wantInErr: "volume 'local:backup/nope.vma' does not exist"},
		{name: "vmid out of range", opts: pve.RestoreOptions{VMID: 99, Archive: archive}, wantInErr: "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := pvesim.New(t)
			e := errs{t, secretOf(sim.Token)}
			sim.AddVolume("local", pvesim.Volume{VolID: archive, Size: 1234})
			if tt.setup != nil {
				tt.setup(sim)
			}
			c := newClient(t, sim)
			ctx := context.Background()

			upid, err := c.RestoreVM(ctx, "pve", tt.opts)
			e.check(err)
			if err == nil {
				var st *pve.TaskStatus
				st, err = c.WaitTask(ctx, "pve", upid, poll)
				e.check(err)
				if tt.wantTask != nil && !errors.Is(err, tt.wantTask) {
					t.Fatalf("WaitTask err = %v, want %v", err, tt.wantTask)
				}
				if err == nil && (!st.Succeeded() || st.ExitStatus != "OK") {
					t.Errorf("final status %+v", st)
				}
				if upid.Type != "qmrestore" || upid.ID != "100" || upid.Node != "pve" || upid.User != sim.TokenID {
					t.Errorf("UPID = %+v", upid)
				}
			} else if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("RestoreVM err = %v, want %v", err, tt.wantErr)
			}
			wantFail := tt.wantErr != nil || tt.wantTask != nil || tt.wantInErr != ""
			if wantFail != (err != nil) {
				t.Fatalf("err = %v, want failure %v", err, wantFail)
			}
			if err != nil && !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("error %q lacks %q", err, tt.wantInErr)
			}
			if err != nil {
				t.Logf("%v", err)
			}
			if tt.wantLog != nil {
				var taskErr *pve.TaskError
				if !errors.As(err, &taskErr) {
					t.Fatalf("err %T is not a *TaskError", err)
				}
				if len(taskErr.Log) != 20 {
					t.Errorf("log tail has %d lines, want 20", len(taskErr.Log))
				}
				tail := taskErr.Log[len(taskErr.Log)-len(tt.wantLog):]
				if strings.Join(tail, "\n") != strings.Join(tt.wantLog, "\n") {
					t.Errorf("log tail ends %q, want %q", tail, tt.wantLog)
				}
			}
			vm, ok := sim.VM(100)
			if ok != (tt.wantStatus != "") || vm.Status != tt.wantStatus {
				t.Errorf("VM afterwards: %+v exists=%v, want status %q", vm, ok, tt.wantStatus)
			}

			// The request went form-encoded with only the set flags.
			if calls := sim.CallsTo("POST", "/nodes/pve/qemu"); len(calls) == 1 {
				p := calls[0].Params
				if calls[0].ContentType != "application/x-www-form-urlencoded" || p.Get("vmid") != "100" ||
					p.Get("archive") != tt.opts.Archive || p.Get("storage") != tt.opts.Storage ||
					p.Has("force") != tt.opts.Force || p.Has("unique") != tt.opts.Unique || p.Has("start") != tt.opts.Start {
					t.Errorf("restore request: %s %v", calls[0].ContentType, p)
				}
				if p.Has("force") && p.Get("force") != "1" {
					t.Errorf("force=%q", p.Get("force"))
				}
			}
		})
	}
}

func TestWaitTaskPolls(t *testing.T) {
	sim := pvesim.New(t, pvesim.WithTaskPolls(3))
	sim.AddVM(pvesim.VM{VMID: 100})
	c := newClient(t, sim)
	upid, err := c.StartVM(context.Background(), "pve", 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitTask(context.Background(), "", upid, poll); err != nil {
		t.Fatal(err)
	}
	statusPath := "/nodes/pve/tasks/" + upid.String() + "/status"
	polls := sim.CallsTo("GET", statusPath)
	if len(polls) != 4 {
		t.Errorf("%d status polls, want 4 (3 running, 1 stopped)", len(polls))
	}

	// Transient failures are ridden out; a refusal or too many are not.
	for i, tt := range []struct {
		fail    []int
		wantErr bool
	}{
		{fail: []int{596, 502, 500}},
		{fail: []int{596, 596, 596, 596}, wantErr: true},
		{fail: []int{403}, wantErr: true},
	} {
		sim.AddVM(pvesim.VM{VMID: 101 + i})
		upid, err := c.StartVM(context.Background(), "pve", 101+i)
		if err != nil {
			t.Fatal(err)
		}
		for _, status := range tt.fail {
			sim.FailNext("GET", "/nodes/pve/tasks/"+upid.String()+"/status", status, "proxy hiccup")
		}
		_, err = c.WaitTask(context.Background(), "pve", upid, poll)
		if (err != nil) != tt.wantErr {
			t.Errorf("failures %v: err = %v, want error %v", tt.fail, err, tt.wantErr)
		}
	}

	// Cancellation while the task runs.
	sim2 := pvesim.New(t, pvesim.WithTaskPolls(1000))
	sim2.AddVM(pvesim.VM{VMID: 100})
	c2 := newClient(t, sim2)
	upid, _ = c2.StartVM(context.Background(), "pve", 100)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	st, err := c2.WaitTask(ctx, "pve", upid, poll)
	if !errors.Is(err, context.DeadlineExceeded) || st == nil || !st.Running() {
		t.Errorf("WaitTask = %+v, %v; want the running status and a deadline error", st, err)
	}
}

func TestStartTemplateStorage(t *testing.T) {
	dir := t.TempDir()
	const file = "vzdump-qemu-100-2024_01_02-03_04_05.vma.zst"
	os.WriteFile(filepath.Join(dir, file), []byte("archive"), 0o644)
	os.WriteFile(filepath.Join(dir, "vzdump-qemu-101-x.vma.zst.part"), []byte("partial"), 0o644)
	sim := pvesim.New(t, pvesim.WithStorageDir("local", dir))
	sim.AddVM(pvesim.VM{VMID: 100})
	sim.AddVM(pvesim.VM{VMID: 200, Status: "running"})
	c := newClient(t, sim)
	ctx := context.Background()
	e := errs{t, secretOf(sim.Token)}

	vols, err := c.StorageContent(ctx, "pve", "local", "backup")
	if err != nil || len(vols) != 1 || vols[0].VolID != "local:backup/"+file || vols[0].Size != 7 ||
		vols[0].Format != "vma.zst" || vols[0].VMID != 100 {
		t.Fatalf("StorageContent = %+v, %v", vols, err)
	}

	upid, err := c.Template(ctx, "pve", 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitTask(ctx, "pve", upid, poll); err != nil {
		t.Fatal(err)
	}
	if vm, _ := sim.VM(100); !vm.Template {
		t.Errorf("VM 100 not a template: %+v", vm)
	}
	// Starting a template fails inside the task.
	upid, err = c.StartVM(ctx, "pve", 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitTask(ctx, "pve", upid, poll); !errors.Is(e.check(err), pve.ErrTaskFailed) {
		t.Errorf("starting a template: %v", err)
	}
	// Converting a running VM fails before any task.
	if _, err := c.Template(ctx, "pve", 200); e.check(err) == nil || !strings.Contains(err.Error(), "VM is running") {
		t.Errorf("template of running VM: %v", err)
	}
	if _, err := c.StartVM(ctx, "pve", 404); !errors.Is(e.check(err), pve.ErrVMNotFound) {
		t.Errorf("start of missing VM: %v", err)
	}

	upid, err = c.DeleteVolume(ctx, "pve", "local", "local:backup/"+file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitTask(ctx, "pve", upid, poll); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, file)); !os.IsNotExist(err) {
		t.Errorf("archive still there: %v", err)
	}
	// The volume ID travelled as one escaped path segment.
	if calls := sim.CallsTo("DELETE", "/nodes/pve/storage/local/content/local:backup/"+file); len(calls) != 1 {
		t.Errorf("DELETE calls: %+v", sim.Calls()[len(sim.Calls())-3:])
	}
}

func TestAPIErrors(t *testing.T) {
	sim := pvesim.New(t)
	c := newClient(t, sim)
	ctx := context.Background()
	e := errs{t, secretOf(sim.Token)}
	tests := []struct {
		status  int
		message string
		wantErr error
	}{
		{403, "Permission check failed (/vms/100, VM.Allocate)", pve.ErrForbidden},
		{500, "Configuration file 'nodes/pve/qemu-server/100.conf' does not exist", pve.ErrVMNotFound},
		{500, "unable to restore VM 100 - VM 100 already exists on node 'pve2'", pve.ErrVMExists},
		{596, "Connection timed out", nil},
	}
	for _, tt := range tests {
		sim.FailNext("GET", "/nodes", tt.status, tt.message)
		_, err := c.Nodes(ctx)
		e.check(err)
		var apiErr *pve.APIError
		if !errors.As(err, &apiErr) || apiErr.StatusCode != tt.status || apiErr.Message != tt.message {
			t.Errorf("%d: err = %#v", tt.status, err)
			continue
		}
		if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
			t.Errorf("%d: %v is not %v", tt.status, err, tt.wantErr)
		}
		for _, other := range []error{pve.ErrUnauthorized, pve.ErrForbidden, pve.ErrVMNotFound, pve.ErrVMExists} {
			if other != tt.wantErr && errors.Is(err, other) {
				t.Errorf("%d: %v also matches %v", tt.status, err, other)
			}
		}
	}
	// Parameter errors carry per-parameter messages.
	_, err := c.StartVM(ctx, "pve", 7)
	var apiErr *pve.APIError
	if !errors.As(e.check(err), &apiErr) || apiErr.StatusCode != http.StatusBadRequest || apiErr.Errors["vmid"] == "" {
		t.Errorf("bad vmid: %#v", err)
	}
	t.Logf("%v", err)
}
