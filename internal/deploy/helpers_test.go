package deploy_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmatool/vmatool/internal/deploy"
	"github.com/vmatool/vmatool/internal/deploy/nodetest"
	"github.com/vmatool/vmatool/internal/pve/pvesim"
	"github.com/vmatool/vmatool/qcow2"
	"github.com/vmatool/vmatool/vma"
)

// vectors are archives made by Proxmox's own vma tool.
const vectors = "../../testdata/vectors"

// requireTool returns the path of an outside tool, skipping the test
// without it unless VMATOOL_REQUIRE_TOOLS=1.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("VMATOOL_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s not found and VMATOOL_REQUIRE_TOOLS=1", name)
		}
		t.Skipf("%s not found", name)
	}
	return p
}

// rawImage writes a raw image of size bytes: text, random data and runs
// of zeros, with a hole at the end; it returns its path and content.
func rawImage(t testing.TB, dir, name string, size int64, seed uint64) (string, []byte) {
	t.Helper()
	b := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, 7))
	for off := int64(0); off < size*3/4; off += 64 << 10 {
		chunk := b[off:min(off+64<<10, size)]
		switch r.IntN(3) {
		case 0:
			for i := range chunk {
				chunk[i] = byte(r.Uint32())
			}
		case 1:
			for i := 0; i < len(chunk); i += 32 {
				copy(chunk[i:], "/nix/store/abcdefghijklmnopqrst\n")
			}
		}
	}
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b[:size*3/4]); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return p, b
}

// qcow2Image writes content as a qcow2 image with vmatool's writer.
func qcow2Image(t testing.TB, dir, name string, content []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := qcow2.NewWriter(f, int64(len(content)))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFrom(context.Background(), bytes.NewReader(content), nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// run plans and runs targets from src, collecting the events.
func run(t testing.TB, src string, opts deploy.Options, targets ...deploy.Target) ([]deploy.Result, *eventLog) {
	t.Helper()
	p, s := plan(t, src, opts, targets...)
	log := &eventLog{}
	return deploy.Run(context.Background(), p, s, log.add), log
}

// plan plans targets from src without running them.
func plan(t testing.TB, src string, opts deploy.Options, targets ...deploy.Target) (*deploy.Plan, *deploy.Source) {
	t.Helper()
	s, err := deploy.OpenSource(src)
	if err != nil {
		t.Fatal(err)
	}
	if opts.TempDir == "" {
		opts.TempDir = t.TempDir()
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = time.Millisecond
	}
	p, err := deploy.NewPlan(s, targets, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p, s
}

// eventLog keeps the events of a run.
type eventLog struct {
	mu     sync.Mutex
	events []deploy.Event
}

func (l *eventLog) add(e deploy.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

// warnings returns the Warning messages.
func (l *eventLog) warnings() []string {
	var out []string
	for _, e := range l.events {
		if w, ok := e.(deploy.Warning); ok {
			out = append(out, w.Message)
		}
	}
	return out
}

// steps returns "step: detail" of each step started.
func (l *eventLog) steps() []string {
	var out []string
	for _, e := range l.events {
		if s, ok := e.(deploy.StepStarted); ok {
			out = append(out, string(s.Step)+": "+s.Detail)
		}
	}
	return out
}

func (l *eventLog) has(step deploy.Step) bool {
	for _, s := range l.steps() {
		if strings.HasPrefix(s, string(step)+":") {
			return true
		}
	}
	return false
}

// nodeTarget is a target on a stand-in node.
func nodeTarget(n *nodetest.Node, vmid int, via deploy.Via) deploy.Target {
	t := deploy.DefaultTarget()
	t.Name = "t"
	t.Host = n.Host()
	t.KnownHosts = n.SSH.KnownHostsFile
	t.Identity = []string{n.SSH.ClientKeyFile}
	t.DumpDir = n.Dump
	t.VMID = vmid
	t.Via = via
	return t
}

// simTarget is a target on the simulator, through the API alone.
func simTarget(t testing.TB, sim *pvesim.Server, vmid int, via deploy.Via) deploy.Target {
	tg := deploy.DefaultTarget()
	tg.Name = "t"
	tg.APIURL = sim.URL
	tg.TLSFingerprint = sim.Fingerprint
	tg.TokenFile = writeFile(t, filepath.Join(t.TempDir(), "token"), []byte(sim.Token+"\n"))
	tg.VMID = vmid
	tg.Via = via
	return tg
}

// importNode is a fresh node whose "local" storage was given import
// content (pvesm set local --content backup,iso,vztmpl,import).
func importNode() pvesim.NodeSpec {
	n := pvesim.DefaultNode("pve")
	n.Storages[0].Content = append(n.Storages[0].Content, "import")
	return n
}

func writeFile(t testing.TB, p string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// unpack reads an archive file (compressed or not) into its configs and
// disks, by device name.
func unpack(t testing.TB, path string) (map[string][]byte, map[string][]byte) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("nothing received: %v", err)
	}
	defer f.Close()
	dr, _, err := vma.Decompress(f)
	if err != nil {
		t.Fatal(err)
	}
	defer dr.Close()
	r, err := vma.NewReader(dr)
	if err != nil {
		t.Fatal(err)
	}
	configs := map[string][]byte{}
	for _, c := range r.Header().Configs {
		configs[c.Name] = c.Data
	}
	disks := map[string][]byte{}
	targets := map[int]io.WriterAt{}
	for _, d := range r.Header().Devices {
		m := &memDisk{b: make([]byte, d.Size)}
		targets[d.ID] = m
		disks[d.Name] = m.b
	}
	if err := vma.Extract(context.Background(), r, targets); err != nil {
		t.Fatal(err)
	}
	return configs, disks
}

type memDisk struct{ b []byte }

func (m *memDisk) WriteAt(p []byte, off int64) (int, error) { return copy(m.b[off:], p), nil }

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// manifest is testdata/vectors/manifest.json: the sha256 of each device
// of each archive.
func manifest(t testing.TB, file string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectors, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Vectors []struct {
			File    string
			Devices []struct{ Name, Sha256 string }
		}
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, v := range m.Vectors {
		if v.File == file {
			out := map[string]string{}
			for _, d := range v.Devices {
				out[d.Name] = d.Sha256
			}
			return out
		}
	}
	t.Fatalf("%s is not in the manifest", file)
	return nil
}

func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}
