//go:build unix

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmatool/vmatool/internal/deploy"
	"github.com/vmatool/vmatool/internal/deploy/nodetest"
	"github.com/vmatool/vmatool/internal/recipe"
	"github.com/vmatool/vmatool/internal/remote"
	"github.com/vmatool/vmatool/vma"
)

// BenchmarkDeployFanout deploys the mixed image to one target, then to
// four targets that share one archive (read and compressed once, streamed
// to each), then to the same four with sharing off (each packs its own),
// over --via ssh-stream to a stand-in node on loopback, in turn, and
// reports the time of each against one target's, the bytes this process
// read (Linux's rchar: the image, the spill file if a target lagged, and
// SSH's small replies) and its peak RSS during the deploy (VmHWM, reset
// before each).
//
//	go test ./bench -run '^$' -bench DeployFanout -benchtime 1x
//
// The stand-in node shares this machine's cores. In the "node=zstd" case
// it decompresses each target's stream (zstd -dc | qmrestore -), which
// real nodes do each on their own CPU: four of them cost four times one.
// "node=discard" gives the node a zstd that decodes only the archive's
// header and reads the rest undecoded (nodetest's DiscardData), so what
// is timed is this process's work and SSH's.
//
// VMATOOL_BENCH_DEPLOY_SIZE changes the image size (default 1G).
func BenchmarkDeployFanout(b *testing.B) {
	img, size := deployBenchImage(b, "vmatool-fanoutbench-")
	data := allocatedBytes(img)
	spill := b.TempDir() // on disk, as os.TempDir is for the CLI

	vmid := 2000
	for _, node := range []string{"zstd", "discard"} {
		b.Run("node="+node, func(b *testing.B) {
			n := nodetest.Start(b)
			n.CountOnly(b)
			if node == "discard" {
				n.DiscardData(b)
			}
			deployN := func(k int, tempDir string) (time.Duration, deployStats) {
				var ts []deploy.Target
				for i := range k {
					vmid++
					t := deploy.DefaultTarget()
					t.Name, t.Host, t.VMID, t.Via = "bench"+strconv.Itoa(i), n.Host(), vmid, deploy.ViaSSHStream
					t.KnownHosts, t.Identity = n.SSH.KnownHostsFile, []string{n.SSH.ClientKeyFile}
					ts = append(ts, t)
				}
				return runDeploy(b, n, img, ts, deploy.Options{Parallel: k, TempDir: tempDir})
			}
			b.SetBytes(size)
			var one, shared, apart time.Duration
			var oneS, sharedS, apartS deployStats
			for i := 0; i < b.N; i++ {
				one, oneS = deployN(1, spill)
				shared, sharedS = deployN(4, spill)
				apart, apartS = deployN(4, "") // no spill folder: no sharing
			}
			b.ReportMetric(shared.Seconds()/one.Seconds(), "shared/one")
			b.ReportMetric(apart.Seconds()/one.Seconds(), "apart/one")
			b.ReportMetric(float64(sharedS.read)/float64(data), "shared-read/data")
			b.ReportMetric(float64(sharedS.peakRSS)/(1<<20), "shared-peakRSS-MiB")
			b.ReportMetric(sharedS.cpu.Seconds()/oneS.cpu.Seconds(), "shared-cpu/one")
			b.ReportMetric(float64(sharedS.read-sharedS.spilled)/float64(data), "shared-imageread/data")
			b.Logf("image %s, %s of data; one target %v; four sharing %v (%.2fx); four apart %v (%.2fx)",
				formatBytes(size), formatBytes(data), one.Round(time.Millisecond), shared.Round(time.Millisecond),
				shared.Seconds()/one.Seconds(), apart.Round(time.Millisecond), apart.Seconds()/one.Seconds())
			// The node shares this machine's cores: four targets can take
			// no less than the CPU time of this process and the node's,
			// spread over every core, however well this process does.
			cores := runtime.NumCPU()
			least := (sharedS.cpu + sharedS.node) / time.Duration(cores)
			b.Logf("four sharing need at least %v on %d cores ((%v here + %v on the node)/%d), %.2fx one target's time; this process alone took %.2fx its CPU for one",
				least.Round(time.Millisecond), cores, sharedS.cpu.Round(10*time.Millisecond), sharedS.node.Round(10*time.Millisecond), cores,
				least.Seconds()/one.Seconds(), sharedS.cpu.Seconds()/oneS.cpu.Seconds())
			b.ReportMetric(least.Seconds()/one.Seconds(), "shared-least/one")
			for _, s := range []struct {
				name string
				st   deployStats
			}{{"one", oneS}, {"shared", sharedS}, {"apart", apartS}} {
				b.Logf("  %-6s read %s (%.2fx the data; %.2fx without the %s read back from spill files), peak RSS %s (%s before), CPU %v here, %v on the node, %v on the machine, %d spill warnings %s",
					s.name, formatBytes(s.st.read), float64(s.st.read)/float64(data), float64(s.st.read-s.st.spilled)/float64(data),
					formatBytes(s.st.spilled), formatBytes(s.st.peakRSS),
					formatBytes(s.st.baseRSS), s.st.cpu.Round(10*time.Millisecond), s.st.node.Round(10*time.Millisecond),
					s.st.machine.Round(10*time.Millisecond), len(s.st.spills), strings.Join(s.st.spills, "; "))
			}
		})
	}
}

// BenchmarkDeployFanoutRSS runs the vmatool binary to deploy the mixed
// image to 1, 4 and 16 targets that share one archive (--parallel as many)
// and reports the peak RSS of each run. GNU time measures it: a child
// this (large) process starts by vfork and exec would inherit its peak
// RSS, one that time starts does not. The node discards what it
// receives (see BenchmarkDeployFanout).
//
//	go test ./bench -run '^$' -bench DeployFanoutRSS -benchtime 1x
func BenchmarkDeployFanoutRSS(b *testing.B) {
	img, size := deployBenchImage(b, "vmatool-fanoutbench-")
	dir := filepath.Dir(img)
	timeCmd, err := exec.LookPath("/usr/bin/time")
	if err != nil {
		b.Skip("measuring a child's peak RSS alone needs GNU time (/usr/bin/time)")
	}
	bin := filepath.Join(dir, "vmatool")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/vmatool/vmatool/cmd/vmatool").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	n := nodetest.Start(b)
	n.DiscardData(b)
	vmid := 3000
	for _, k := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("targets=%d", k), func(b *testing.B) {
			b.SetBytes(size)
			var rss int64
			var wall time.Duration
			for i := 0; i < b.N; i++ {
				var ts []map[string]any
				for j := range k {
					vmid++
					ts = append(ts, map[string]any{"name": fmt.Sprintf("t%d", j+1), "host": n.Host(), "vmid": vmid, "via": "ssh-stream",
						"known-hosts": n.SSH.KnownHostsFile, "identity": n.SSH.ClientKeyFile})
				}
				js, err := json.Marshal(ts)
				if err != nil {
					b.Fatal(err)
				}
				tf := filepath.Join(dir, "targets.json")
				if err := os.WriteFile(tf, js, 0o644); err != nil {
					b.Fatal(err)
				}
				rssFile := filepath.Join(dir, "rss")
				cmd := exec.Command(timeCmd, "-f", "%M", "-o", rssFile, bin, "deploy", "-q", "--targets", tf, "--parallel", strconv.Itoa(k), img)
				cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH"), "TMPDIR=" + b.TempDir()}
				start := time.Now()
				out, err := cmd.CombinedOutput()
				wall = time.Since(start)
				if err != nil {
					b.Fatalf("vmatool deploy: %v\n%s", err, out)
				}
				kib, err := os.ReadFile(rssFile)
				if err != nil {
					b.Fatal(err)
				}
				if rss, err = strconv.ParseInt(strings.TrimSpace(string(kib)), 10, 64); err != nil {
					b.Fatalf("GNU time wrote %q", kib)
				}
				rss <<= 10
			}
			b.ReportMetric(float64(rss)/(1<<20), "peakRSS-MiB")
			b.Logf("%d targets sharing one archive of a %s image: %v, peak RSS %s", k, formatBytes(size), wall.Round(time.Millisecond), formatBytes(rss))
		})
	}
}

// deployStats is what runDeploy measured besides the time.
type deployStats struct {
	read int64 // bytes this process read
	// spilled is the part of read that came back from a share's spill
	// file; the rest is the image (and SSH's small replies).
	spilled          int64
	peakRSS, baseRSS int64
	spills           []string
	// cpu is this process's user+system time; node is the stand-in
	// node's (its sshd and what that ran); machine is every process's on
	// the machine (those two, and anyone else's).
	cpu, node, machine time.Duration
}

// runDeploy plans and runs targets, all of which must succeed.
func runDeploy(b *testing.B, n *nodetest.Node, img string, ts []deploy.Target, opts deploy.Options) (time.Duration, deployStats) {
	src, err := deploy.OpenSource(img)
	if err != nil {
		b.Fatal(err)
	}
	plan, err := deploy.NewPlan(src, ts, opts)
	if err != nil {
		b.Fatal(err)
	}
	wantShared := len(ts) > 1 && opts.TempDir != ""
	for _, tp := range plan.Targets {
		if (len(tp.Shares) == len(ts)) != wantShared {
			b.Fatalf("%s shares with %q", tp.Target.Name, tp.Shares)
		}
	}
	var st deployStats
	runtime.GC()
	debug.FreeOSMemory()
	st.baseRSS = resetPeakRSS()
	node0 := nodeCPU(b, n)
	before, cpu0, machine0 := processRead(), processCPU(), machineCPU()
	start := time.Now()
	res := deploy.Run(context.Background(), plan, src, func(e deploy.Event) {
		if w, ok := e.(deploy.Warning); ok && strings.Contains(w.Message, "spill") {
			st.spills = append(st.spills, w.Target+": "+w.Message)
		}
	})
	elapsed := time.Since(start)
	st.read, st.peakRSS = processRead()-before, peakRSS()
	st.cpu, st.machine = processCPU()-cpu0, machineCPU()-machine0
	st.node = nodeCPU(b, n) - node0
	for _, r := range res {
		if !r.OK {
			b.Fatalf("%s: %s", r.Target, r.Detail)
		}
		st.spilled += r.Spilled
	}
	return elapsed, st
}

// nodeCPU is the stand-in node's CPU time so far, once the connections
// of the last deploy have ended.
func nodeCPU(b *testing.B, n *nodetest.Node) time.Duration {
	d, ok := n.SSH.CPU(10 * time.Second)
	if !ok {
		b.Fatal("the stand-in node's sshd connections did not end")
	}
	return d
}

// processRead is what this process has read with read system calls of
// any kind (rchar), or 0 where that is not known.
func processRead() int64 {
	v, _ := procField("/proc/self/io", "rchar:")
	return v
}

// resetPeakRSS makes the kernel's peak RSS of this process start again
// from the current RSS (Linux 4.0 and later), and returns that.
func resetPeakRSS() int64 {
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	return peakRSS()
}

// peakRSS is this process's peak RSS since the last reset, or 0.
func peakRSS() int64 {
	kib, _ := procField("/proc/self/status", "VmHWM:")
	return kib << 10
}

// processCPU is this process's user and system time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineCPU is the time all CPUs spent busy so far (/proc/stat), or 0.
func machineCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var busy int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / 100 // USER_HZ
}

// procField reads the number after name in a /proc file.
func procField(path, name string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name); ok {
			return strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, name)
}

// BenchmarkDeployFanoutSSH streams the mixed image's archive, as one
// target of BenchmarkDeployFanout receives it, into "cat >/dev/null" on
// the stand-in node: with this process's SSH client (x/crypto, as deploy
// sends), with OpenSSH's ssh and AES-128-GCM (what x/crypto negotiates),
// and with OpenSSH's ssh and its own first choice, ChaCha20-Poly1305. It
// reports each client's CPU time and the node's (its sshd and cat): what
// one target's stream costs on each side, whoever sends it, and what four
// targets on one machine pay four times over.
//
//	go test ./bench -run '^$' -bench DeployFanoutSSH -benchtime 1x
func BenchmarkDeployFanoutSSH(b *testing.B) {
	img, _ := deployBenchImage(b, "vmatool-fanoutbench-")
	archive := filepath.Join(b.TempDir(), "archive.vma.zst")
	if err := packArchive(img, archive); err != nil {
		b.Fatal(err)
	}
	st, err := os.Stat(archive)
	if err != nil {
		b.Fatal(err)
	}
	sshPath, err := exec.LookPath("ssh")
	if err != nil {
		b.Skip("the comparison needs OpenSSH's ssh client")
	}
	n := nodetest.Start(b)
	const sink = "cat >/dev/null"
	xcrypto := func(f *os.File) (time.Duration, string, error) {
		c, err := remote.Dial(context.Background(), n.SSH.Config())
		if err != nil {
			return 0, "", err
		}
		defer c.Close()
		cpu0 := processCPU()
		err = c.Run(context.Background(), []string{"sh", "-c", sink}, f, nil, nil)
		return processCPU() - cpu0, c.Cipher(), err
	}
	openssh := func(cipher string) func(f *os.File) (time.Duration, string, error) {
		return func(f *os.File) (time.Duration, string, error) {
			args := []string{"-F", "/dev/null", "-v", "-o", "BatchMode=yes", "-i", n.SSH.ClientKeyFile,
				"-o", "UserKnownHostsFile=" + n.SSH.KnownHostsFile, "-p", strconv.Itoa(n.SSH.Port)}
			if cipher != "" {
				args = append(args, "-c", cipher)
			}
			cmd := exec.Command(sshPath, append(args, n.SSH.User+"@"+n.SSH.Host, sink)...)
			var log strings.Builder
			cmd.Stdin, cmd.Stderr = f, &log
			if err := cmd.Run(); err != nil {
				return 0, "", fmt.Errorf("ssh: %v\n%s", err, log.String())
			}
			// -v logs "debug1: kex: client->server cipher: NAME MAC: ..."
			_, rest, _ := strings.Cut(log.String(), "client->server cipher: ")
			name, _, _ := strings.Cut(rest, " ")
			return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), name, nil
		}
	}
	for _, c := range []struct {
		name string
		send func(f *os.File) (time.Duration, string, error)
	}{{"client=x-crypto", xcrypto}, {"client=openssh-aes128-gcm", openssh("aes128-gcm@openssh.com")}, {"client=openssh-default", openssh("")}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(st.Size())
			var client, node, wall time.Duration
			var cipher string
			for i := 0; i < b.N; i++ {
				f, err := os.Open(archive)
				if err != nil {
					b.Fatal(err)
				}
				node0 := nodeCPU(b, n)
				start := time.Now()
				client, cipher, err = c.send(f)
				wall = time.Since(start)
				f.Close()
				if err != nil {
					b.Fatal(err)
				}
				node = nodeCPU(b, n) - node0
			}
			b.ReportMetric(client.Seconds(), "client-cpu-s")
			b.ReportMetric(node.Seconds(), "node-cpu-s")
			b.Logf("%s into %q over %s: %v, CPU %v in the client, %v on the node (sshd and cat)",
				formatBytes(st.Size()), sink, cipher, wall.Round(time.Millisecond), client.Round(10*time.Millisecond), node.Round(10*time.Millisecond))
		})
	}
}

// packArchive packs img into a zstd-compressed archive at path, as a
// deploy of one target sends it.
func packArchive(img, path string) error {
	pack, err := recipe.Open(recipe.Spec{Disks: []recipe.Disk{{Name: "scsi0", Path: img}}, VMID: 100})
	if err != nil {
		return err
	}
	defer pack.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pack.WriteArchive(context.Background(), f, vma.Zstd, 0, nil); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
