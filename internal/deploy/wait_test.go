package deploy_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmatool/vmatool/internal/deploy"
	"github.com/vmatool/vmatool/internal/deploy/nodetest"
	"github.com/vmatool/vmatool/internal/pve/pvesim"
)

// TestWaitAgent waits for the guest agent through the API: one that
// answers after a delay, with several interfaces whose loopback and
// link-local addresses are left out; one that never answers, which fails
// the target after the timeout and leaves the VM, or removes it under
// destroy-on-failure.
func TestWaitAgent(t *testing.T) {
	sim := pvesim.New(t, pvesim.WithNodes(importNode()))
	img, _ := rawImage(t, t.TempDir(), "nixos.raw", 1<<20, 61)
	target := func(vmid int) deploy.Target {
		tg := simTarget(t, sim, vmid, deploy.ViaImport)
		tg.Wait, tg.WaitTimeout = deploy.WaitAgent, deploy.Duration(2*time.Second)
		return tg
	}
	t.Run("answers after a delay", func(t *testing.T) {
		sim.SetAgent(501, pvesim.Agent{Delay: 400 * time.Millisecond, Interfaces: []pvesim.Interface{
			{Name: "lo", IPs: []string{"127.0.0.1/8", "::1/128"}},
			{Name: "ens18", MAC: "bc:24:11:00:00:05", IPs: []string{"192.0.2.5/24", "fe80::be24:11ff:fe00:5/64", "2001:db8::5/64"}},
			{Name: "ens19", IPs: []string{"169.254.10.1/16", "198.51.100.5/24"}},
		}})
		start := time.Now()
		res, log := run(t, img, deploy.Options{}, target(501))
		r := res[0]
		if !r.OK || r.Detail != "imported, started, agent answered" || !slices.Equal(r.Addresses, []string{"192.0.2.5", "2001:db8::5", "198.51.100.5"}) {
			t.Fatalf("result %+v", r)
		}
		if time.Since(start) < 400*time.Millisecond || len(sim.CallsTo("POST", "/nodes/pve/qemu/501/agent/ping")) < 2 {
			t.Errorf("the agent answered at once? %d pings", len(sim.CallsTo("POST", "/nodes/pve/qemu/501/agent/ping")))
		}
		if b, _ := json.Marshal(r); !strings.Contains(string(b), `"node":"pve",`) || !strings.Contains(string(b), `"addresses":["192.0.2.5","2001:db8::5","198.51.100.5"]`) {
			t.Errorf("result as JSON: %s", b)
		}
		if !log.has(deploy.StepStart) || !log.has(deploy.StepWait) {
			t.Errorf("steps %q", log.steps())
		}
	})
	t.Run("never answers", func(t *testing.T) {
		sim.SetAgent(502, pvesim.Agent{Never: true})
		start := time.Now()
		res, _ := run(t, img, deploy.Options{}, target(502))
		r := res[0]
		if took := time.Since(start); r.OK || !errors.Is(r.Err, deploy.ErrAgentTimeout) || took < 2*time.Second || took > 10*time.Second ||
			!strings.Contains(r.Detail, "did not answer within 2s (last answer: pve: POST /nodes/pve/qemu/502/agent/ping: 500 QEMU guest agent is not running)") ||
			!strings.Contains(r.Detail, "VM 502 is left as it is") {
			t.Fatalf("result %+v after %v", r, took)
		}
		if vm, ok := sim.VM(502); !ok || vm.Status != "running" {
			t.Errorf("VM 502: %+v", vm)
		}
	})
	t.Run("never answers, destroy on failure", func(t *testing.T) {
		sim.SetAgent(503, pvesim.Agent{Never: true})
		tg := target(503)
		tg.WaitTimeout, tg.DestroyOnFailure = deploy.Duration(500*time.Millisecond), true
		res, log := run(t, img, deploy.Options{}, tg)
		if res[0].OK || !errors.Is(res[0].Err, deploy.ErrAgentTimeout) {
			t.Fatalf("result %+v", res[0])
		}
		if _, ok := sim.VM(503); ok || len(sim.CallsTo("POST", "/nodes/pve/qemu/503/status/stop")) != 1 {
			t.Error("VM 503 was not stopped and removed")
		}
		if w := log.warnings(); len(w) != 1 || !strings.Contains(w[0], "removed VM 503") {
			t.Errorf("warnings %q", w)
		}
	})
	t.Run("no agent in the config", func(t *testing.T) {
		tg := target(504)
		tg.Agent = false
		s, _ := deploy.OpenSource(img)
		_, err := deploy.NewPlan(s, []deploy.Target{tg}, deploy.Options{TempDir: t.TempDir()})
		if !errors.Is(err, deploy.ErrInvalidTarget) || !strings.Contains(err.Error(), "does not enable the QEMU guest agent") {
			t.Errorf("NewPlan = %v", err)
		}
	})
}

// TestWaitAgentSSH waits with qm guest cmd over SSH, and puts the VM
// under HA with ha-manager.
func TestWaitAgentSSH(t *testing.T) {
	n := nodetest.Start(t)
	img, _ := rawImage(t, t.TempDir(), "nixos.raw", 1<<20, 62)
	t.Run("answers after a delay", func(t *testing.T) {
		n.SetAgent(t, 511, nodetest.Agent{Delay: 400 * time.Millisecond, Interfaces: []nodetest.Interface{
			{Name: "lo", IPs: []string{"127.0.0.1/8", "::1/128"}},
			{Name: "eth0", IPs: []string{"fe80::1/64", "192.0.2.11/24", "2001:db8::11/64"}},
		}})
		tg := nodeTarget(n, 511, deploy.ViaSSHStream)
		tg.Wait, tg.WaitTimeout, tg.HA, tg.HAGroup = deploy.WaitAgent, deploy.Duration(5*time.Second), true, "prod"
		res, _ := run(t, img, deploy.Options{}, tg)
		r := res[0]
		if !r.OK || !slices.Equal(r.Addresses, []string{"192.0.2.11", "2001:db8::11"}) || r.Detail != "restored, started, agent answered, under HA (group prod)" {
			t.Fatalf("result %+v", r)
		}
		calls := n.Calls("qm")
		pings := 0
		for _, c := range calls {
			if c == "guest cmd 511 ping" {
				pings++
			}
		}
		if calls[0] != "set 511 --net0 virtio,bridge=vmbr0" || calls[1] != "start 511" || pings < 2 || calls[len(calls)-1] != "guest cmd 511 network-get-interfaces" {
			t.Errorf("qm calls %q", calls)
		}
		if state, group, ok := n.HA(511); !ok || state != "started" || group != "prod" {
			t.Errorf("HA %q %q %v", state, group, ok)
		}
		if got := strings.Join(n.Calls("pvesh"), ";"); !strings.Contains(got, "get /version --output-format json") {
			t.Errorf("the version was not checked for ha-group: pvesh %q", got)
		}
	})
	t.Run("never answers, destroy on failure", func(t *testing.T) {
		n.SetAgent(t, 512, nodetest.Agent{Never: true})
		tg := nodeTarget(n, 512, deploy.ViaSSHStream)
		tg.Wait, tg.WaitTimeout, tg.DestroyOnFailure = deploy.WaitAgent, deploy.Duration(time.Second), true
		res, _ := run(t, img, deploy.Options{}, tg)
		if res[0].OK || !errors.Is(res[0].Err, deploy.ErrAgentTimeout) || !strings.Contains(res[0].Detail, "QEMU guest agent is not running") {
			t.Fatalf("result %+v", res[0])
		}
		if _, ok := n.Config(512); ok || n.Running(512) {
			t.Error("VM 512 left behind")
		}
		calls := strings.Join(n.Calls("qm"), ";")
		if !strings.Contains(calls, "stop 512;destroy 512 --purge 1") {
			t.Errorf("qm calls %q", calls)
		}
	})
	t.Run("ha-group on Proxmox VE 9", func(t *testing.T) {
		n.SetVersion(t, "9.0.3")
		tg := nodeTarget(n, 513, deploy.ViaSSH)
		tg.HA, tg.HAGroup = true, "prod"
		res, _ := run(t, img, deploy.Options{}, tg)
		if res[0].OK || !errors.Is(res[0].Err, deploy.ErrHAGroupsGone) || !strings.Contains(res[0].Detail, "runs Proxmox VE 9.0.3") {
			t.Fatalf("result %+v", res[0])
		}
		if len(dirNames(t, n.Dump)) != 0 || slices.ContainsFunc(n.Calls("qmrestore"), func(c string) bool { return strings.Contains(c, " 513 ") }) {
			t.Error("something was sent before the refusal")
		}
		tg.HAGroup = ""
		res, _ = run(t, img, deploy.Options{}, tg)
		if state, group, ok := n.HA(513); !res[0].OK || !ok || state != "stopped" || group != "" {
			t.Errorf("without the group: result %+v, HA %q %q %v", res[0], state, group, ok)
		}
	})
}
