package deploy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/vmatool/vmatool/internal/deploy"
	"github.com/vmatool/vmatool/internal/deploy/nodetest"
	"github.com/vmatool/vmatool/internal/remote"
	"github.com/vmatool/vmatool/vma"
)

// proxy forwards TCP connections to an address, after a delay, and cuts
// each one, both ways, once limit bytes (if not 0) went towards it: a
// slow network, or one lost in the middle of an upload. read counts what
// it read, both ways.
type proxy struct {
	addr string
	read atomic.Int64
}

func startProxy(t *testing.T, target string, limit int64, delay time.Duration) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{addr: l.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			time.Sleep(delay)
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			var r io.Reader = in
			if limit > 0 {
				r = io.LimitReader(in, limit)
			}
			wg.Go(func() {
				n, _ := copyPlain(out, r)
				p.read.Add(n)
				in.Close()
				out.Close()
			})
			wg.Go(func() {
				n, _ := copyPlain(in, out)
				p.read.Add(n)
			})
		}
	})
	return p
}

// copyPlain copies with read and write calls, never splice, so that what
// it reads counts among the process's reads.
func copyPlain(w io.Writer, r io.Reader) (int64, error) {
	return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{r}, make([]byte, 32<<10))
}

// knownHostsAt writes a known_hosts file that names key at addr.
func knownHostsAt(t *testing.T, addr string, key ssh.PublicKey) string {
	t.Helper()
	return writeFile(t, filepath.Join(t.TempDir(), "known_hosts"), []byte(knownhosts.Line([]string{knownhosts.Normalize(addr)}, key)+"\n"))
}

// processRead is what this process has read so far with read system
// calls of any kind (Linux's rchar), or -1 where that is not known.
func processRead(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	return -1
}

// fleet is four targets for one image on node n, named web1 to web4 with
// VM IDs from vmid; all but the last set their VM's name.
func fleet(n *nodetest.Node, vmid int, vias ...deploy.Via) []deploy.Target {
	var ts []deploy.Target
	for i, via := range vias {
		tg := nodeTarget(n, vmid+i, via)
		tg.Name = fmt.Sprintf("web%d", i+1)
		if i < len(vias)-1 {
			tg.VMName = tg.Name
		}
		ts = append(ts, tg)
	}
	return ts
}

// TestShareFanOut deploys one image to four targets that share one
// archive, over both SSH paths, while the connection of one of them is
// cut in the middle of its upload: the image is read once, the other
// three are restored, each from an archive that holds the image byte for
// byte and the first target's config, and renamed to what their own
// configs say.
func TestShareFanOut(t *testing.T) {
	n := nodetest.Start(t)
	img, want := rawImage(t, t.TempDir(), "nixos.raw", 8<<20, 21)
	data := int64(len(want) * 3 / 4) // the rest is a hole, never read
	// A 256 KiB ring, so the 2 MiB archive overflows it as a real image
	// overflows 8 MiB, and a lagging target is served from the spill file.
	reads := deploy.CountSharedReads(t, 256<<10, 64<<10)
	cut := startProxy(t, n.SSH.Addr, 1<<20, 0)
	targets := fleet(n, 401, deploy.ViaSSHStream, deploy.ViaSSH, deploy.ViaSSH, deploy.ViaSSHStream)
	targets[2].Host = n.SSH.User + "@" + cut.addr
	targets[2].KnownHosts = knownHostsAt(t, cut.addr, n.SSH.HostKey)

	src, err := deploy.OpenSource(img)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := deploy.NewPlan(src, targets, deploy.Options{Parallel: 4, TempDir: t.TempDir(), PollInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"web1", "web2", "web3", "web4"}
	for _, tp := range plan.Targets {
		if !slices.Equal(tp.Shares, names) || !strings.Contains(tp.Config, "name: web1\n") {
			t.Errorf("%s: shares %q, config\n%s", tp.Target.Name, tp.Shares, tp.Config)
		}
	}
	text := plan.String()
	for _, s := range []string{"once for the 4 targets that share it (web1, web2, web3, web4)",
		"name VM 402 web2 with qm set over SSH (the shared archive's config names it web1)",
		"name VM 404 vm404 with qm set"} {
		if !strings.Contains(text, s) {
			t.Errorf("the plan lacks %q:\n%s", s, text)
		}
	}
	if strings.Contains(text, "name VM 401") {
		t.Errorf("the first target needs no rename:\n%s", text)
	}

	before := processRead(t)
	log := &eventLog{}
	res := deploy.Run(context.Background(), plan, src, log.add)
	read := processRead(t) - before

	if w, b := reads.Writers.Load(), reads.Bytes.Load(); w != 1 || b != data {
		t.Errorf("%d archives written, %d bytes read from the image; want 1 and its %d bytes of data", w, b, data)
	}
	// Everything else the process read, SSH replies included, is the
	// image once; four archives written apart would read it four times.
	// (What the proxy relayed and the spill file gave back are reads too.)
	if before >= 0 {
		if other := read - cut.read.Load() - reads.Unspilled(); other < data || other > data*9/8 {
			t.Errorf("the process read %d bytes for an image of %d bytes of data (%d relayed, %d from spill files)",
				read, data, cut.read.Load(), reads.Unspilled())
		}
	}
	for i, r := range res {
		if i == 2 {
			if r.OK || !errors.Is(r.Err, remote.ErrConnectionLost) || !strings.Contains(r.Detail, "uploading") {
				t.Errorf("web3, cut off: %+v", r)
			}
			continue
		}
		if !r.OK {
			t.Errorf("%s: %+v", r.Target, r)
			continue
		}
		configs, disks := unpack(t, n.Received(r.VMID))
		if !bytes.Equal(disks["drive-scsi0"], want) {
			t.Errorf("%s: the restored disk differs from the image", r.Target)
		}
		if !strings.Contains(string(configs["qemu-server.conf"]), "name: web1\n") {
			t.Errorf("%s restored from its own archive, not the shared one:\n%s", r.Target, configs["qemu-server.conf"])
		}
	}
	var renames []string
	for _, c := range n.Calls("qm") {
		if strings.Contains(c, " --name ") {
			renames = append(renames, c)
		}
	}
	if got := strings.Join(renames, ";"); got != "set 402 --name web2;set 404 --name vm404" &&
		got != "set 404 --name vm404;set 402 --name web2" {
		t.Errorf("qm calls %q", got)
	}
	for vmid, name := range map[int]string{402: "web2", 404: "vm404"} {
		if conf, _ := n.Config(vmid); !strings.Contains(conf, "name: "+name+"\n") {
			t.Errorf("VM %d config %q", vmid, conf)
		}
	}
	if _, ok := n.Config(403); ok || slices.Contains(n.Guests(), 403) {
		t.Error("the cut-off target left a VM")
	}
	if names := dirNames(t, n.Dump); len(names) != 0 {
		t.Errorf("the dump folder holds %v", names)
	}
	t.Logf("read %d bytes in all, %d of them relayed and %d from spill files; warnings %q", read, cut.read.Load(), reads.Unspilled(), log.warnings())
}

// TestShareWaitsForItsTargets: the shared archive is not read before
// every target of the group has reached its transfer, so none misses
// its start; here one reaches it a second after the others.
func TestShareWaitsForItsTargets(t *testing.T) {
	n := nodetest.Start(t)
	img, want := rawImage(t, t.TempDir(), "nixos.raw", 4<<20, 26)
	slow := startProxy(t, n.SSH.Addr, 0, time.Second)
	targets := fleet(n, 701, deploy.ViaSSHStream, deploy.ViaSSH, deploy.ViaSSHStream)
	targets[1].Host = n.SSH.User + "@" + slow.addr
	targets[1].KnownHosts = knownHostsAt(t, slow.addr, n.SSH.HostKey)
	res, log := run(t, img, deploy.Options{Parallel: 3}, targets...)
	for i, r := range res {
		if !r.OK {
			t.Fatalf("%s: %+v", r.Target, r)
		}
		if _, disks := unpack(t, n.Received(701+i)); !bytes.Equal(disks["drive-scsi0"], want) {
			t.Errorf("%s: the restored disk differs from the image", r.Target)
		}
	}
	joined := false
	for _, e := range log.events {
		switch e := e.(type) {
		case deploy.StepStarted:
			joined = joined || (e.Target == "web2" && e.Step == deploy.StepTransfer)
		case deploy.BytesSent:
			if e.Read > 0 && !joined {
				t.Fatalf("%s: %d bytes of the image read before web2 reached its transfer", e.Target, e.Read)
			}
		}
	}
	if len(log.warnings()) != 0 {
		t.Errorf("warnings %q", log.warnings())
	}
}

// TestShareLateTarget: a target that reaches its transfer after the
// others stopped waiting for it reads what it missed from the spill file,
// and restores the image all the same; a target whose node never
// answers keeps no one waiting.
func TestShareLateTarget(t *testing.T) {
	n := nodetest.Start(t)
	deploy.ShortenShareGrace(t, 100*time.Millisecond)
	reads := deploy.CountSharedReads(t, 256<<10, 64<<10)
	img, want := rawImage(t, t.TempDir(), "nixos.raw", 8<<20, 25)
	slow := startProxy(t, n.SSH.Addr, 0, 2*time.Second)
	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never speaks
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	targets := fleet(n, 601, deploy.ViaSSHStream, deploy.ViaSSHStream, deploy.ViaSSH, deploy.ViaSSHStream)
	targets[1].Host = n.SSH.User + "@" + slow.addr
	targets[1].KnownHosts = knownHostsAt(t, slow.addr, n.SSH.HostKey)
	targets[3].Host = n.SSH.User + "@" + silent.Addr().String()
	res, log := run(t, img, deploy.Options{Parallel: 4, SSHTimeout: 4 * time.Second}, targets...)
	if w := reads.Writers.Load(); w != 1 {
		t.Errorf("%d shared archives written", w)
	}
	for i, r := range res[:3] {
		if !r.OK {
			t.Fatalf("%s: %+v", r.Target, r)
		}
		if _, disks := unpack(t, n.Received(601+i)); !bytes.Equal(disks["drive-scsi0"], want) {
			t.Errorf("%s: the restored disk differs from the image", r.Target)
		}
	}
	if res[3].OK || !errors.Is(res[3].Err, context.DeadlineExceeded) {
		t.Errorf("the silent node: %+v", res[3])
	}
	// Not waiting for the silent node, web1 and web3 are done before it
	// times out.
	if res[0].Seconds >= 4 || res[2].Seconds >= 4 {
		t.Errorf("the targets waited for the silent node: %.1fs, %.1fs", res[0].Seconds, res[2].Seconds)
	}
	late := false
	for _, e := range log.events {
		if w, ok := e.(deploy.Warning); ok && w.Target == "web2" && strings.Contains(w.Message, "came from a spill file") {
			late = true
		}
	}
	if !late || res[1].Spilled == 0 {
		t.Errorf("warnings %q, %d bytes spilled: the late target web2 should have read from the spill file", log.warnings(), res[1].Spilled)
	}
	for _, r := range res {
		if r.Spilled > r.Sent {
			t.Errorf("%s: %d bytes from the spill file, of %d sent", r.Target, r.Spilled, r.Sent)
		}
	}
}

// TestShareNodeStopsReading: a node whose zstd quits early stops reading
// its share of the archive; its restore fails and its VM is removed,
// while the other three targets restore the image in full.
func TestShareNodeStopsReading(t *testing.T) {
	n, bad := nodetest.Start(t), nodetest.Start(t)
	bad.SSH.AddCommand(t, "zstd", `[ "$1" = --version ] && { echo "zstd stand-in"; exit 0; }
head -c 300000 >/dev/null
echo "zstd: error 70 : Write error : cannot write block" >&2
exit 1`)
	img, want := rawImage(t, t.TempDir(), "nixos.raw", 8<<20, 22)
	reads := deploy.CountSharedReads(t, 256<<10, 64<<10)
	targets := fleet(n, 501, deploy.ViaSSHStream, deploy.ViaSSHStream, deploy.ViaSSHStream, deploy.ViaSSHStream)
	targets[1] = nodeTarget(bad, 502, deploy.ViaSSHStream)
	targets[1].Name, targets[1].VMName = "web2", "web2"
	res, log := run(t, img, deploy.Options{Parallel: 4}, targets...)
	if w := reads.Writers.Load(); w != 1 {
		t.Errorf("%d shared archives written", w)
	}
	for i, r := range res {
		if i == 1 {
			if r.OK || !strings.Contains(r.Detail, "can't read vma header - got EOF") {
				t.Errorf("web2: %+v", r)
			}
			continue
		}
		if !r.OK {
			t.Errorf("%s: %+v", r.Target, r)
			continue
		}
		if _, disks := unpack(t, n.Received(r.VMID)); !bytes.Equal(disks["drive-scsi0"], want) {
			t.Errorf("%s: the restored disk differs from the image", r.Target)
		}
	}
	if ids := bad.Guests(); len(ids) != 0 {
		t.Errorf("the failed restore left %v", ids)
	}
	if !slices.Contains(log.warnings(), "removed VM 502, which this deploy had created") {
		t.Errorf("warnings %q", log.warnings())
	}
}

// TestShareArchive: a zstd archive goes once to targets of both SSH
// paths, as it is, and each restores the disks the manifest lists.
func TestShareArchive(t *testing.T) {
	n := nodetest.Start(t)
	reads := deploy.CountSharedReads(t, 0, 0)
	file := "v02-two-disks.vma"
	src := filepath.Join(t.TempDir(), "v02.vma.zst")
	compressZstd(t, filepath.Join(vectors, file), src)
	res, _ := run(t, src, deploy.Options{Parallel: 3}, fleet(n, 801, deploy.ViaSSHStream, deploy.ViaSSH, deploy.ViaSSHStream)...)
	if w := reads.Writers.Load(); w != 1 {
		t.Errorf("%d shared archives written", w)
	}
	for _, r := range res {
		if !r.OK {
			t.Fatalf("%s: %+v", r.Target, r)
		}
		_, disks := unpack(t, n.Received(r.VMID))
		for name, sum := range manifest(t, file) {
			if sha(disks[name]) != sum {
				t.Errorf("%s: %s: sha256 %s, manifest %s", r.Target, name, sha(disks[name]), sum)
			}
		}
	}
	if calls := n.Calls("qm"); len(calls) != 0 {
		t.Errorf("an archive's own config names every VM alike, yet qm ran: %q", calls)
	}
}

// compressZstd writes src compressed with zstd to dst.
func compressZstd(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	w, err := vma.Compress(out, vma.Zstd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, in); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSharePlan: which targets share an archive.
func TestSharePlan(t *testing.T) {
	img, _ := rawImage(t, t.TempDir(), "nixos.raw", 1<<20, 23)
	target := func(name string, vmid int, via deploy.Via) deploy.Target {
		tg := deploy.DefaultTarget()
		tg.Name, tg.Host, tg.VMID, tg.Via = name, "root@pve-"+name, vmid, via
		return tg
	}
	many := func(k int, via deploy.Via) []deploy.Target {
		var ts []deploy.Target
		for i := range k {
			ts = append(ts, target(fmt.Sprintf("t%d", i+1), 200+i, via))
		}
		return ts
	}
	set := func(ts []deploy.Target, i int, f func(*deploy.Target)) []deploy.Target { f(&ts[i]); return ts }
	for _, tc := range []struct {
		name     string
		src      string
		targets  []deploy.Target
		parallel int
		noTemp   bool
		want     string // each target's Shares, joined
		packs    int    // written at once at most
	}{
		{"vmid, name, storage and path differ", img, set(set(many(3, deploy.ViaSSH), 1, func(t *deploy.Target) {
			t.Via, t.Storage, t.VMName = deploy.ViaSSHStream, "local-zfs", "db"
		}), 2, func(t *deploy.Target) { t.KeepArchive, t.Start = true, true }), 4, false,
			"t1,t2,t3|t1,t2,t3|t1,t2,t3", 1},
		{"memory differs", img, set(many(3, deploy.ViaSSH), 1, func(t *deploy.Target) { t.Memory = 4096 }), 4, false,
			"t1,t3||t1,t3", 2},
		{"level differs", img, set(many(2, deploy.ViaSSH), 1, func(t *deploy.Target) { t.Level = 9 }), 4, false, "|", 2},
		{"one at a time", img, many(3, deploy.ViaSSH), 1, false, "||", 1},
		{"no temporary folder", img, many(2, deploy.ViaSSH), 4, true, "|", 2},
		{"groups of at most parallel", img, many(4, deploy.ViaSSHStream), 3, false, "t1,t2,t3|t1,t2,t3|t1,t2,t3|", 1},
		{"groups of at most 16", img, many(18, deploy.ViaSSHStream), 20, false,
			strings.Repeat("t1,t2,t3,t4,t5,t6,t7,t8,t9,t10,t11,t12,t13,t14,t15,t16|", 16) + "t17,t18|t17,t18", 2},
		{"paths without an SSH stream", img, set(set(many(3, deploy.ViaSSH), 1, func(t *deploy.Target) {
			t.Via, t.APIURL = deploy.ViaAPI, "https://pve:8006"
		}), 2, func(t *deploy.Target) { t.Via = deploy.ViaImport }), 4, false, "||", 3},
		{"a zstd archive, sent as it is", filepath.Join(vectors, "v01-single.vma.zst"),
			set(many(2, deploy.ViaSSH), 1, func(t *deploy.Target) { t.Via = deploy.ViaSSHStream }), 4, false, "t1,t2|t1,t2", 1},
		{"a gzip archive: as it is, or in zstd", filepath.Join(vectors, "v01-single.vma.gz"),
			set(many(3, deploy.ViaSSH), 1, func(t *deploy.Target) { t.Via = deploy.ViaSSHStream }), 4, false, "t1,t3||t1,t3", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := deploy.OpenSource(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			opts := deploy.Options{Parallel: tc.parallel, TempDir: t.TempDir(), Token: "root@pam!t=00000000-0000-0000-0000-000000000000"}
			if tc.noTemp {
				opts.TempDir = ""
			}
			plan, err := deploy.NewPlan(src, tc.targets, opts)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, tp := range plan.Targets {
				got = append(got, strings.Join(tp.Shares, ","))
			}
			if strings.Join(got, "|") != tc.want {
				t.Errorf("shares %q, want %q\n%s", strings.Join(got, "|"), tc.want, plan)
			}
			if plan.Packs() != tc.packs {
				t.Errorf("%d archives written at once, want %d", plan.Packs(), tc.packs)
			}
		})
	}
}

// TestSharePlanConfigFile: targets whose config comes from one file share
// without a rename: the name is the file's.
func TestSharePlanConfigFile(t *testing.T) {
	img, _ := rawImage(t, t.TempDir(), "nixos.raw", 1<<20, 24)
	conf := writeFile(t, filepath.Join(t.TempDir(), "vm.conf"), []byte("memory: 512\nname: fromfile\nscsi0: local-lvm:vm-100-disk-0\n"))
	var ts []deploy.Target
	for i := range 2 {
		tg := deploy.DefaultTarget()
		tg.Name, tg.Host, tg.VMID, tg.Via, tg.Config = fmt.Sprintf("t%d", i+1), "root@pve", 300+i, deploy.ViaSSH, conf
		ts = append(ts, tg)
	}
	src, err := deploy.OpenSource(img)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := deploy.NewPlan(src, ts, deploy.Options{Parallel: 2, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if text := plan.String(); len(plan.Targets[1].Shares) != 2 || strings.Contains(text, "qm set") {
		t.Errorf("plan:\n%s", text)
	}
}
