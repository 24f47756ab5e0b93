package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vmatool/vmatool/internal/pve/pvesim"
)

// fleetTargets are three targets as a Nix attribute set and as a list.
const (
	fleetAttrs = `{
  "db1":  {"host": "root@pve.invalid", "vmid": 202, "tags": ["db"], "memory": 4096},
  "web1": {"host": "root@pve.invalid", "vmid": 201, "tags": ["web"], "name": "web1", "vm-name": "web1"},
  "web2": {"host": "root@pve.invalid", "vmid": 203, "tags": ["web"], "via": "ssh-stream", "start": true}
}`
	fleetList = `[
  {"name": "db1",  "host": "root@pve.invalid", "vmid": 202, "tags": ["db"], "memory": 4096},
  {"name": "web1", "host": "root@pve.invalid", "vmid": 201, "tags": ["web"], "vm-name": "web1"},
  {"name": "web2", "host": "root@pve.invalid", "vmid": 203, "tags": ["web"], "via": "ssh-stream", "start": true}
]`
)

// TestDeployTargetsShapes: an attribute set of targets (nix eval --json
// .#deploy.targets), the same targets as a list, and either wrapped in
// {"targets": ...} give the same plan; --on @tag selects what --tag does;
// a bad key is refused with its path.
func TestDeployTargetsShapes(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, dir, "nixos.raw", 1<<20)
	file := func(name, content string) string { return writeFile(t, filepath.Join(dir, name), []byte(content)) }
	// Archive names carry the time the plan is made: runs a second apart
	// differ there only.
	stamp := regexp.MustCompile(`\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d`)
	plan := func(args ...string) string {
		t.Helper()
		out := runInProcess(t, nil, deployEnvVars, append(append([]string{"deploy", "--dry-run", "--json"}, args...), img)...).mustSucceed(t).stdout
		return stamp.ReplaceAllString(out, "DATE")
	}
	attrs := plan("--targets", file("attrs.json", fleetAttrs))
	for name, content := range map[string]string{
		"list.json": fleetList, "wrapped-attrs.json": `{"targets": ` + fleetAttrs + `}`, "wrapped-list.json": `{"targets": ` + fleetList + `}`,
	} {
		if got := plan("--targets", file(name, content)); got != attrs {
			t.Errorf("%s plans differently from the attribute set:\n%s\n%s", name, got, attrs)
		}
	}
	var p struct {
		Targets []struct {
			Target         struct{ Name string }
			Storage        string
			QemuServerConf string `json:"qemu-server.conf"`
		}
	}
	if err := json.Unmarshal([]byte(attrs), &p); err != nil || len(p.Targets) != 3 || p.Targets[0].Target.Name != "db1" ||
		p.Targets[1].Storage != "local-lvm" || !strings.Contains(p.Targets[0].QemuServerConf, "memory: 4096") {
		t.Errorf("plan %s (%v)", attrs, err)
	}

	targets := file("t.json", fleetAttrs)
	if on, tag := plan("--targets", targets, "--on", "@web"), plan("--targets", targets, "--tag", "web"); on != tag || strings.Count(on, `"vmid"`) != 2 {
		t.Errorf("--on @web and --tag web differ:\n%s\n%s", on, tag)
	}
	if a, b := plan("--targets", targets, "--on", "@web,db1"), plan("--targets", targets, "--on", "db1", "--on", "@web"); a != b || a != attrs {
		t.Errorf("--on @web,db1 selects differently")
	}

	for _, tc := range []struct{ content, want string }{
		{`{"web1": {"host": "h", "vmid": 201, "strage": "x"}}`, "targets.web1.strage: unknown key"},
		{`[{"host": "h", "vmid": 201}, {"host": "h", "vmid": 202, "strage": "x"}]`, "targets[1].strage: unknown key"},
		{`{"targets": {"web.1": {"host": "h", "vmid": 201, "strage": "x"}}}`, `targets."web.1".strage: unknown key`},
		{`{"web1": {"host": "h", "vmid": "201"}}`, "targets.web1.vmid: want a number, not a JSON string"},
		{`{"web1": {"host": "h", "vmid": 201, "name": "web2"}}`, `targets.web1.name: "web2" does not agree with the key "web1"`},
		{`{"web1": {"host": "h", "vmid": 201}, "web1": {"host": "h", "vmid": 202}}`, "targets.web1: given twice"},
		{`{"web1": {"host": "h", "vmid": 201, "wait-timeout": "soon"}}`, `targets.web1.wait-timeout: want a duration such as "5m" or "90s", not "soon"`},
		{`{"web1": [1]}`, "targets.web1: want an object of target settings"},
		{`{"web1": {"host": "h", "vmid": 201,}}`, "targets: at offset 35: invalid character '}' looking for beginning of object key string"},
	} {
		r := runInProcess(t, nil, deployEnvVars, "deploy", "--dry-run", "--targets", file("bad.json", tc.content), img)
		if r.code != 2 || !strings.Contains(r.stderr, filepath.Join(dir, "bad.json")+": "+tc.want) {
			t.Errorf("%s: exit %d, %q; want %q", tc.content, r.code, r.stderr, tc.want)
		}
	}
	if r := runInProcess(t, nil, deployEnvVars, "deploy", "--dry-run", "--on", "@web", img); r.code != 2 || !strings.Contains(r.stderr, "pick from --targets FILE") {
		t.Errorf("--on without --targets: exit %d %q", r.code, r.stderr)
	}
	if r := runInProcess(t, nil, deployEnvVars, "deploy", "--dry-run", "--targets", targets, "--on", "web1,,db1", img); r.code != 2 || !strings.Contains(r.stderr, "want NAME or @TAG") {
		t.Errorf("--on with an empty item: exit %d %q", r.code, r.stderr)
	}
}

// TestDeployFleet places three targets of an attribute set across a
// simulated cluster (--node auto), imports each, waits for its guest
// agent and puts it under HA: the dry run and the run agree on the nodes,
// and the results name each VM's node and addresses.
func TestDeployFleet(t *testing.T) {
	node := func(name string, free uint64) pvesim.NodeSpec {
		n := pvesim.DefaultNode(name)
		n.Storages[0].Content = append(n.Storages[0].Content, "import")
		n.MaxMem, n.Mem = 64<<30, 64<<30-free
		return n
	}
	off := node("pve4", 60<<30)
	off.Offline = true
	sim := pvesim.New(t, pvesim.WithNodes(node("pve1", 40<<30), node("pve2", 36<<30), node("pve3", 34<<30), off), pvesim.WithTaskPolls(0))
	sim.SetAgent(603, pvesim.Agent{Interfaces: []pvesim.Interface{
		{Name: "lo", IPs: []string{"127.0.0.1/8"}}, {Name: "ens18", IPs: []string{"fe80::3/64", "192.0.2.3/24", "2001:db8::3/64"}},
	}})
	dir := t.TempDir()
	targets := writeFile(t, filepath.Join(dir, "targets.json"), []byte(`{
  "web1": {"vmid": 601, "tags": ["web"]},
  "web2": {"vmid": 602, "tags": ["web"]},
  "web3": {"vmid": 603, "tags": ["web"]}
}`))
	env := append(deployEnvVars, "PVE_TOKEN="+sim.Token, "TMPDIR="+dir)
	args := []string{"deploy", "-q", "--targets", targets, "--api-url", sim.URL, "--tls-fingerprint", sim.Fingerprint,
		"--node", "auto", "--memory", "8192", "--via", "import", "--wait", "agent", "--wait-timeout", "20s", "--ha"}
	r := runInProcess(t, nil, env, append(args, "--dry-run", "--json", demoImage)...).mustSucceed(t)
	var plan struct {
		Targets []struct {
			Node      string
			Placement struct {
				FreeMem uint64 `json:"free-mem"`
			}
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &plan); err != nil || len(plan.Targets) != 3 {
		t.Fatalf("plan %s (%v)", r.stdout, err)
	}
	want := []string{"pve1", "pve2", "pve3"}
	for i, tp := range plan.Targets {
		if tp.Node != want[i] {
			t.Errorf("the plan puts target %d on %s, want %s", i, tp.Node, want[i])
		}
	}
	r = runInProcess(t, nil, env, append(args, "--dry-run", demoImage)...).mustSucceed(t)
	t.Logf("vmatool %s --dry-run %s\n%s", strings.Join(args, " "), demoImage, r.stdout)
	for i, n := range want {
		if !strings.Contains(r.stdout, fmt.Sprintf("web%d: VM %d on %s via import (node %s)\n  node: %s, placed by node auto", i+1, 601+i, sim.URL, n, n)) {
			t.Errorf("the text plan does not place web%d on %s:\n%s", i+1, n, r.stdout)
		}
	}
	if len(sim.VMs()) != 0 {
		t.Fatal("the dry run made VMs")
	}

	r = vmatool(t, nil, env, append(args, demoImage)...).mustSucceed(t)
	r.assertRSS(t)
	t.Logf("deploy of three placed targets with --wait agent --ha: peak RSS %.1f MiB", float64(r.maxRSS)/(1<<20))
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "TARGET") || !strings.Contains(lines[0], " NODE ") || !strings.HasSuffix(lines[0], "ADDRESSES") {
		t.Fatalf("table:\n%s", r.stdout)
	}
	for i, line := range lines[1:] {
		f := strings.Fields(line)
		vm, ok := sim.VM(601 + i)
		if f[0] != fmt.Sprintf("web%d", i+1) || f[2] != want[i] || !ok || vm.Node != want[i] || vm.Status != "running" || sim.HAResources()[fmt.Sprintf("vm:%d", 601+i)] != "started" {
			t.Errorf("row %q, VM %+v", line, vm)
		}
	}
	if !strings.HasSuffix(lines[3], "  192.0.2.3 2001:db8::3") || !strings.HasSuffix(lines[1], "  192.0.2.10") {
		t.Errorf("addresses:\n%s", r.stdout)
	}
}

// TestDeployHAGroupPVE9: --ha-group is refused on Proxmox VE 9, before
// anything is sent.
func TestDeployHAGroupPVE9(t *testing.T) {
	n := pvesim.DefaultNode("pve")
	n.Storages[0].Content = append(n.Storages[0].Content, "import")
	sim := pvesim.New(t, pvesim.WithNodes(n), pvesim.WithVersion("9.0.3"))
	r := runInProcess(t, nil, append(deployEnvVars, "PVE_TOKEN="+sim.Token, "TMPDIR="+t.TempDir()), "deploy", "-q", "--api-url", sim.URL,
		"--tls-fingerprint", sim.Fingerprint, "--vmid", "610", "--ha", "--ha-group", "prod", demoImage)
	if r.code != 1 || !strings.Contains(r.stdout, "runs Proxmox VE 9.0.3, where HA groups became HA rules") {
		t.Errorf("exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if len(sim.CallsTo("POST", "/nodes/pve/storage/local/upload")) != 0 || len(sim.VMs()) != 0 {
		t.Error("something was sent")
	}
}

// TestDeployNoNodeFits: a target no node can take is shown so in the dry
// run, which exits 1, and fails alone in the run.
func TestDeployNoNodeFits(t *testing.T) {
	n := pvesim.DefaultNode("pve1")
	n.Storages[0].Content = append(n.Storages[0].Content, "import")
	sim := pvesim.New(t, pvesim.WithNodes(n), pvesim.WithTaskPolls(0))
	dir := t.TempDir()
	targets := writeFile(t, filepath.Join(dir, "targets.json"), []byte(`{
  "a": {"vmid": 621},
  "b": {"vmid": 622, "storage": "fast"}
}`))
	env := append(deployEnvVars, "PVE_TOKEN="+sim.Token, "TMPDIR="+dir)
	args := []string{"deploy", "-q", "--targets", targets, "--api-url", sim.URL, "--tls-fingerprint", sim.Fingerprint, "--node", "auto", "--via", "import"}
	r := runInProcess(t, nil, env, append(args, "--dry-run", demoImage)...)
	if r.code != 1 || !strings.Contains(r.stdout, "a: VM 621 on "+sim.URL+" via import (node pve1)") ||
		!strings.Contains(r.stdout, "node: auto, and none fits: b: deploy: no node can take the VM 622 (1.0 GiB of memory, 64.0 MiB of disks on fast): pve1 (no storage fast)") ||
		!strings.Contains(r.stderr, "no node can take the VM 622") {
		t.Errorf("dry run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = runInProcess(t, nil, env, append(args, demoImage)...)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 1 || len(lines) != 3 || !strings.Contains(lines[1], " pve1 ") || !strings.Contains(lines[1], " ok ") ||
		!strings.Contains(lines[2], " FAILED ") || !strings.Contains(lines[2], "pve1 (no storage fast)") {
		t.Errorf("run: exit %d\n%s", r.code, r.stdout)
	}
	if _, ok := sim.VM(621); !ok {
		t.Error("a was not deployed")
	}
}

// TestDeployTargetsOverride: the flags given on the command line win over
// every target of a --targets file, lists and booleans included, and the
// flags not given leave the file's values as they are, even where the
// flag's default differs from them.
func TestDeployTargetsOverride(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, dir, "nixos.raw", 1<<20)
	targets := writeFile(t, filepath.Join(dir, "targets.json"), []byte(`{
  "web1": {"host": "root@pve.invalid", "vmid": 201, "storage": "fast", "memory": 4096, "cores": 2, "start": true, "net": ["net0=virtio,bridge=vmbr1"]},
  "web2": {"host": "root@pve.invalid", "vmid": 202, "memory": 2048, "cores": 4, "via": "ssh-stream", "wait-timeout": "90s"}
}`))
	type planned struct {
		Targets []struct {
			Target struct {
				Name        string
				VMID        int
				Storage     string
				Via         string
				Memory      int
				Cores       int
				Start       bool
				Net         []string
				WaitTimeout string `json:"wait-timeout"`
			}
		}
	}
	plan := func(args ...string) planned {
		t.Helper()
		r := runInProcess(t, nil, deployEnvVars, append(append([]string{"deploy", "--dry-run", "--json", "--targets", targets}, args...), img)...).mustSucceed(t)
		var p planned
		if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || len(p.Targets) != 2 {
			t.Fatalf("plan %s (%v)", r.stdout, err)
		}
		return p
	}

	p := plan("--memory", "512")
	for i, want := range []struct {
		name, storage, via, timeout string
		cores                       int
		start                       bool
		net                         string
	}{
		{"web1", "fast", "auto", "5m0s", 2, true, "net0=virtio,bridge=vmbr1"},
		{"web2", "local-lvm", "ssh-stream", "1m30s", 4, false, "virtio,bridge=vmbr0"},
	} {
		got := p.Targets[i].Target
		if got.Name != want.name || got.Memory != 512 {
			t.Errorf("%s: memory %d, want --memory 512 over the file's", got.Name, got.Memory)
		}
		if got.Storage != want.storage || got.Via != want.via || got.Cores != want.cores || got.Start != want.start ||
			got.WaitTimeout != want.timeout || strings.Join(got.Net, " ") != want.net {
			t.Errorf("%s: the flags not given changed the file's values: %+v, want %+v", got.Name, got, want)
		}
	}

	p = plan("--net", "net0=e1000,bridge=vmbr9", "--net", "net1=virtio,bridge=vmbr2", "--start=false", "--wait-timeout", "2m", "--storage", "slow")
	for _, tt := range p.Targets {
		got := tt.Target
		if strings.Join(got.Net, " ") != "net0=e1000,bridge=vmbr9 net1=virtio,bridge=vmbr2" || got.Start || got.WaitTimeout != "2m0s" || got.Storage != "slow" {
			t.Errorf("%s: %+v, want the command line's net, start, wait-timeout and storage", got.Name, got)
		}
	}
	if p.Targets[0].Target.Memory != 4096 || p.Targets[1].Target.Cores != 4 || p.Targets[1].Target.Via != "ssh-stream" {
		t.Errorf("values the command line did not give changed: %+v", p.Targets)
	}
}

// TestRunDeployOptions: the same override, from an options struct: the
// command line's target with the flags it gave marked, no argv at all.
func TestRunDeployOptions(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, dir, "nixos.raw", 1<<20)
	targets := writeFile(t, filepath.Join(dir, "targets.json"), []byte(`[
  {"name": "a", "host": "root@pve.invalid", "vmid": 301, "cores": 3},
  {"name": "b", "host": "root@pve.invalid", "vmid": 302, "cores": 5, "tags": ["x"]}
]`))
	o := defaults[deployOptions]()
	o.args, o.targets, o.dryRun, o.json = []string{img}, targets, true, true
	o.target.Cores, o.target.Memory = 8, 768
	o.give("memory") // cores is set but not given: the file's stand
	o.tags = []string{"x"}
	s, out, _ := fakeStreams(false)
	home := t.TempDir()
	s.getenv = func(k string) string {
		return map[string]string{"HOME": home, "USERPROFILE": home, "GOMEMLIMIT": "off"}[k]
	}
	if err := runDeploy(context.Background(), s, o); err != nil {
		t.Fatal(err)
	}
	var p struct {
		Targets []struct {
			Target struct {
				Name   string
				Cores  int
				Memory int
			}
		}
	}
	if err := json.Unmarshal(out.Bytes(), &p); err != nil || len(p.Targets) != 1 {
		t.Fatalf("plan %s (%v)", out, err)
	}
	if got := p.Targets[0].Target; got.Name != "b" || got.Cores != 5 || got.Memory != 768 {
		t.Errorf("target %+v, want b with the file's 5 cores and the given 768 MiB", got)
	}
}
