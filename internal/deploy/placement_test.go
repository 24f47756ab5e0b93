package deploy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vmatool/vmatool/internal/deploy"
	"github.com/vmatool/vmatool/internal/deploy/nodetest"
	"github.com/vmatool/vmatool/internal/pve/pvesim"
	"github.com/vmatool/vmatool/internal/remote"
)

// fleetNode is a node with import content on local, 64 GiB of memory of
// which free is free.
func fleetNode(name string, free uint64) pvesim.NodeSpec {
	n := importNode()
	n.Name, n.MaxMem, n.Mem = name, 64<<30, 64<<30-free
	return n
}

// fleetNodes are three nodes that can take a VM with disks of disk
// bytes, with 40, 36 and 34 GiB free, and three with more free memory
// that cannot: one offline, one without local-lvm, one whose local-lvm
// has room for half the disks.
func fleetNodes(disk uint64) []pvesim.NodeSpec {
	off := fleetNode("pve4", 60<<30)
	off.Offline = true
	noStorage := fleetNode("pve5", 60<<30)
	noStorage.Storages = noStorage.Storages[:1]
	full := fleetNode("pve6", 60<<30)
	full.Storages[1].Used = full.Storages[1].Total - disk/2
	return []pvesim.NodeSpec{fleetNode("pve1", 40<<30), fleetNode("pve2", 36<<30), fleetNode("pve3", 34<<30), off, noStorage, full}
}

// TestPlaceSpreads places three 8 GiB VMs on a cluster of six nodes: each
// goes to the node with the most free memory once the ones before it are
// counted, so they spread over the three nodes that fit; the offline
// node, the one without the storage and the one without room on it are
// never chosen, though they have more free memory. The run puts each VM
// where the plan said, and HA takes them in the group and state asked.
func TestPlaceSpreads(t *testing.T) {
	sim := pvesim.New(t, pvesim.WithNodes(fleetNodes(1<<20)...))
	img, _ := rawImage(t, t.TempDir(), "nixos.raw", 1<<20, 51)
	var targets []deploy.Target
	for i := range 3 {
		tg := simTarget(t, sim, 401+i, deploy.ViaImport)
		tg.Name, tg.Node, tg.Memory = fmt.Sprintf("web%d", i+1), deploy.NodeAuto, 8192
		targets = append(targets, tg)
	}
	targets[0].HA, targets[0].HAGroup, targets[0].Wait = true, "prod", deploy.WaitAgent
	targets[1].HA = true
	p, src := plan(t, img, deploy.Options{}, targets...)
	if !strings.Contains(p.String(), "node: auto (chosen when the plan is placed)") {
		t.Errorf("unplaced plan:\n%s", p)
	}
	if err := p.Place(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		node string
		free uint64
	}{{"pve1", 40 << 30}, {"pve2", 36 << 30}, {"pve3", 34 << 30}}
	for i, w := range want {
		tp := p.Targets[i]
		if tp.Node != w.node || tp.Target.Node != w.node || tp.Placement == nil || tp.Placement.FreeMem != w.free ||
			tp.Placement.Memory != 8<<30 || tp.Placement.Disk != 1<<20 {
			t.Fatalf("target %d placed on %s (%+v), want %s with %d free", i, tp.Node, tp.Placement, w.node, w.free)
		}
	}
	passed := p.Targets[0].Placement.PassedOver
	for _, why := range []string{"pve2 (36.0 GiB free memory)", "pve4 (offline)", "pve5 (no storage local-lvm)", "pve6 (512.0 KiB free on local-lvm, 1.0 MiB needed)"} {
		if !slices.Contains(passed, why) {
			t.Errorf("passed over %q, want %q among them", passed, why)
		}
	}
	text := p.String()
	if !strings.Contains(text, "web3: VM 403 on "+sim.URL+" via import (node pve3)\n  node: pve3, placed by node auto (from the API at "+sim.URL+"): the most free memory, 34.0 GiB of 64.0 GiB, for 8.0 GiB;") {
		t.Errorf("plan:\n%s", text)
	}
	b, _ := json.Marshal(p)
	var back deploy.Plan
	if err := json.Unmarshal(b, &back); err != nil || back.Targets[2].Node != "pve3" || back.Targets[2].Placement.FreeMem != 34<<30 {
		t.Errorf("JSON plan: %v %s", err, b)
	}

	log := &eventLog{}
	res := deploy.Run(context.Background(), p, src, log.add)
	for i, r := range res {
		vm, ok := sim.VM(401 + i)
		if !r.OK || r.Node != want[i].node || !ok || vm.Node != want[i].node {
			t.Errorf("target %d: result %+v, VM %+v; the plan said %s", i, r, vm, want[i].node)
		}
	}
	for _, n := range []string{"pve4", "pve5", "pve6"} {
		for _, vm := range sim.VMs() {
			if vm.Node == n {
				t.Errorf("VM %d went to %s", vm.VMID, n)
			}
		}
	}
	ha := sim.HAResources()
	if len(ha) != 2 || ha["vm:401"] != "started" || ha["vm:402"] != "stopped" || sim.HAGroup("vm:401") != "prod" || sim.HAGroup("vm:402") != "" {
		t.Errorf("HA resources %v, group of vm:401 %q", ha, sim.HAGroup("vm:401"))
	}
	if res[0].Detail != "imported, started, agent answered, under HA (group prod)" || res[1].Detail != "imported, under HA" {
		t.Errorf("details %q, %q", res[0].Detail, res[1].Detail)
	}
}

// TestPlaceCountsDisks: the node with the most free memory has room on
// its storage for one VM's disks only, so the second VM goes elsewhere.
func TestPlaceCountsDisks(t *testing.T) {
	big := fleetNode("big", 60<<30)
	big.Storages[1].Used = big.Storages[1].Total - 3<<19 // 1.5 MiB
	sim := pvesim.New(t, pvesim.WithNodes(big, fleetNode("small", 10<<30)))
	img, _ := rawImage(t, t.TempDir(), "nixos.raw", 1<<20, 52)
	a, b := simTarget(t, sim, 411, deploy.ViaImport), simTarget(t, sim, 412, deploy.ViaImport)
	a.Name, b.Name = "a", "b"
	a.Node, b.Node = deploy.NodeAuto, deploy.NodeAuto
	p, _ := plan(t, img, deploy.Options{}, a, b)
	if err := p.Place(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p.Targets[0].Node != "big" || p.Targets[1].Node != "small" ||
		!slices.Contains(p.Targets[1].Placement.PassedOver, "big (512.0 KiB free on local-lvm, 1.0 MiB needed)") {
		t.Errorf("placed on %s and %s; passed over %q", p.Targets[0].Node, p.Targets[1].Node, p.Targets[1].Placement.PassedOver)
	}
}

// TestPlaceNoNode: when no node fits, the plan says why for each, and
// Run fails the target without touching the cluster.
func TestPlaceNoNode(t *testing.T) {
	nodes := fleetNodes(1 << 20)[3:]
	sim := pvesim.New(t, pvesim.WithNodes(nodes...))
	img, _ := rawImage(t, t.TempDir(), "nixos.raw", 1<<20, 53)
	tg := simTarget(t, sim, 421, deploy.ViaImport)
	tg.Node = deploy.NodeAuto
	p, src := plan(t, img, deploy.Options{}, tg)
	err := p.Place(context.Background())
	if !errors.Is(err, deploy.ErrNoNode) || !strings.Contains(err.Error(), "pve4 (offline), pve5 (no storage local-lvm), pve6 (512.0 KiB free on local-lvm, 1.0 MiB needed)") {
		t.Fatalf("Place = %v", err)
	}
	if !strings.Contains(p.String(), "node: auto, and none fits: t: deploy: no node can take the VM 421") {
		t.Errorf("plan:\n%s", p)
	}
	before := len(sim.Calls())
	res := deploy.Run(context.Background(), p, src, nil)
	if res[0].OK || !errors.Is(res[0].Err, deploy.ErrNoNode) || len(sim.Calls()) != before {
		t.Errorf("result %+v, %d calls after the plan", res[0], len(sim.Calls())-before)
	}
}

// TestRunPlaces: Run places a plan the caller did not place.
func TestRunPlaces(t *testing.T) {
	sim := pvesim.New(t, pvesim.WithNodes(fleetNode("pve1", 4<<30), fleetNode("pve2", 8<<30)))
	img, _ := rawImage(t, t.TempDir(), "nixos.raw", 1<<20, 54)
	tg := simTarget(t, sim, 431, deploy.ViaImport)
	tg.Node = deploy.NodeAuto
	res, _ := run(t, img, deploy.Options{}, tg)
	if vm, ok := sim.VM(431); !res[0].OK || res[0].Node != "pve2" || !ok || vm.Node != "pve2" {
		t.Errorf("result %+v, VM %+v", res[0], vm)
	}
}

// TestPlaceOverSSH: a path over SSH reads the cluster with pvesh on the
// host, and a VM placed on another node goes there over SSH by the
// node's name, as the SSH config resolves it; one placed on the host's
// own node stays on the host.
func TestPlaceOverSSH(t *testing.T) {
	nodes := nodetest.StartCluster(t, "pvea", "pveb")
	a, b := nodes[0], nodes[1]
	b.SSH.AuthorizeKey(t, a.SSH.ClientKey.PublicKey())
	off := nodetest.DefaultClusterNode("pvec")
	off.Status, off.Mem = "offline", 0
	rowA, rowB := nodetest.DefaultClusterNode("pvea"), nodetest.DefaultClusterNode("pveb")
	rowA.Mem, rowB.Mem = 54<<30, 44<<30 // 10 and 20 GiB free
	a.SetCluster(t, rowA, rowB, off)

	dir := t.TempDir()
	known := writeFile(t, filepath.Join(dir, "known_hosts"), []byte(a.SSH.KnownHostsLine+"\n"+b.SSH.KnownHostsLine+"\n"))
	conf := writeFile(t, filepath.Join(dir, "config"), []byte(fmt.Sprintf(
		"Host pvea\n  HostName 127.0.0.1\n  Port %d\n  User %s\nHost pveb\n  HostName 127.0.0.1\n  Port %d\n  User %s\n",
		a.SSH.Port, a.SSH.User, b.SSH.Port, b.SSH.User)))
	sc, err := remote.ReadSSHConfig(remote.SSHConfigOptions{UserFile: conf, Home: dir, LocalUser: a.SSH.User})
	if err != nil {
		t.Fatal(err)
	}
	img, want := rawImage(t, t.TempDir(), "nixos.raw", 1<<20, 55)
	var targets []deploy.Target
	for i, via := range []deploy.Via{deploy.ViaSSHStream, deploy.ViaSSH} {
		tg := nodeTarget(a, 441+i, via)
		tg.Name, tg.Host, tg.KnownHosts, tg.Node, tg.Memory = fmt.Sprintf("t%d", i+1), "pvea", known, deploy.NodeAuto, 12<<10
		targets = append(targets, tg)
	}
	p, src := plan(t, img, deploy.Options{SSHConfig: sc}, targets...)
	if err := p.Place(context.Background()); err != nil {
		t.Fatal(err)
	}
	// 20 GiB free on pveb takes the first 12 GiB VM; then pvea's 10 GiB
	// is more than pveb's 8 left.
	if p.Targets[0].Node != "pveb" || p.Targets[0].Target.Host != "pveb" || p.Targets[1].Node != "pvea" || p.Targets[1].Target.Host != "pvea" ||
		p.Targets[0].Placement.From != "pvesh over SSH to pvea" || !slices.Contains(p.Targets[0].Placement.PassedOver, "pvec (offline)") {
		t.Fatalf("placed %+v %+v", p.Targets[0], p.Targets[1])
	}
	if got := strings.Join(a.Calls("pvesh"), ";"); got != "get /cluster/resources --output-format json" {
		t.Errorf("pvesh calls %q: the cluster is read once", got)
	}
	res := deploy.Run(context.Background(), p, src, nil)
	if !res[0].OK || res[0].Node != "pveb" || !res[1].OK || res[1].Node != "pvea" {
		t.Fatalf("results %+v", res)
	}
	if _, ok := b.Config(441); !ok {
		t.Error("VM 441 is not on pveb")
	}
	if _, ok := a.Config(442); !ok {
		t.Error("VM 442 is not on pvea")
	}
	if _, disks := unpack(t, b.Received(441)); string(disks["drive-scsi0"]) != string(want) {
		t.Error("the disk restored on pveb differs from the image")
	}
	if names, _ := os.ReadDir(b.Dump); len(names) != 0 {
		t.Errorf("left in pveb's dump folder: %v", names)
	}
}

// TestPlaceFallsBackToAPI: under via auto, when SSH to the host fails the
// placement reads the cluster through the API, as the run then imports
// through it.
func TestPlaceFallsBackToAPI(t *testing.T) {
	// The node's name is where SSH then goes: localhost refuses at once.
	sim := pvesim.New(t, pvesim.WithNodes(fleetNode("pve1", 4<<30), fleetNode("localhost", 8<<30)))
	img, _ := rawImage(t, t.TempDir(), "nixos.raw", 1<<20, 56)
	tg := simTarget(t, sim, 451, deploy.ViaAuto)
	tg.Host, tg.Node, tg.KnownHosts = "root@127.0.0.1:1", deploy.NodeAuto, filepath.Join(t.TempDir(), "known_hosts")
	p, src := plan(t, img, deploy.Options{}, tg)
	if err := p.Place(context.Background()); err != nil {
		t.Fatal(err)
	}
	tp := p.Targets[0]
	if tp.Node != "localhost" || !strings.HasPrefix(tp.Placement.From, "the API at "+sim.URL+", SSH having failed") || tp.Target.Host != "root@localhost:1" ||
		!strings.Contains(tp.Steps[len(tp.Steps)-1], "if SSH to root@localhost:1 fails") {
		t.Fatalf("placed %+v", tp)
	}
	res := deploy.Run(context.Background(), p, src, nil)
	if vm, ok := sim.VM(451); !res[0].OK || res[0].Via != deploy.ViaImport || !ok || vm.Node != "localhost" {
		t.Errorf("result %+v, VM %+v", res[0], vm)
	}
}
