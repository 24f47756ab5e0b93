package main

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/vmatool/vmatool/internal/deploy"
	"github.com/vmatool/vmatool/internal/deploy/nodetest"
	"github.com/vmatool/vmatool/internal/recipe"
	"github.com/vmatool/vmatool/internal/remote"
	"github.com/vmatool/vmatool/vma"
)

// The deploy benchmark runs where the harness cannot: it needs an sshd,
// which package sshtest starts for a test. It deploys the mixed image over
// --via ssh-stream to a stand-in node on loopback, through a TCP proxy
// that counts the bytes on the wire, while the stand-in qmrestore counts
// the uncompressed stream it reads; the "uncompressed" case sends the
// plain archive into "qmrestore -", as --stream did before, for
// comparison.
//
//	go test ./bench -run '^$' -bench DeploySSHStream -benchtime 1x
//
// VMATOOL_BENCH_DEPLOY_SIZE changes the image size (default 1G).
func BenchmarkDeploySSHStream(b *testing.B) {
	img, size := deployBenchImage(b, "vmatool-deploybench-")
	dir := filepath.Dir(img)

	n := nodetest.Start(b)
	n.CountOnly(b)
	proxy := startCountingProxy(b, n.SSH.Addr)
	knownHosts := filepath.Join(dir, "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(proxy.addr)}, n.SSH.HostKey) + "\n"
	if err := os.WriteFile(knownHosts, []byte(line), 0o644); err != nil {
		b.Fatal(err)
	}

	vmid := 1000
	b.Run("ssh-stream", func(b *testing.B) {
		b.SetBytes(size)
		var wire, stream int64
		for i := 0; i < b.N; i++ {
			vmid++
			t := deploy.DefaultTarget()
			t.Name, t.Host, t.VMID, t.Via = "bench", n.SSH.User+"@"+proxy.addr, vmid, deploy.ViaSSHStream
			t.KnownHosts, t.Identity = knownHosts, []string{n.SSH.ClientKeyFile}
			src, err := deploy.OpenSource(img)
			if err != nil {
				b.Fatal(err)
			}
			plan, err := deploy.NewPlan(src, []deploy.Target{t}, deploy.Options{TempDir: dir})
			if err != nil {
				b.Fatal(err)
			}
			proxy.up.Store(0)
			res := deploy.Run(context.Background(), plan, src, nil)
			if !res[0].OK {
				b.Fatal(res[0].Err)
			}
			wire, stream = proxy.up.Load(), n.ReceivedBytes(b, vmid)
		}
		reportWire(b, size, wire, stream)
	})
	b.Run("uncompressed", func(b *testing.B) {
		b.SetBytes(size)
		var wire, stream int64
		for i := 0; i < b.N; i++ {
			vmid++
			c, err := remote.Dial(context.Background(), remote.Config{User: n.SSH.User, Host: "127.0.0.1", Port: proxy.port,
				IdentityFiles: []string{n.SSH.ClientKeyFile}, KnownHostsFile: knownHosts})
			if err != nil {
				b.Fatal(err)
			}
			proxy.up.Store(0)
			if err := sendPlain(c, img, vmid); err != nil {
				b.Fatal(err)
			}
			c.Close()
			wire, stream = proxy.up.Load(), n.ReceivedBytes(b, vmid)
		}
		reportWire(b, size, wire, stream)
	})
}

// sendPlain packs img uncompressed into "qmrestore - VMID" over c.
func sendPlain(c *remote.Client, img string, vmid int) error {
	pack, err := recipe.Open(recipe.Spec{Disks: []recipe.Disk{{Name: "scsi0", Path: img}}, VMID: vmid})
	if err != nil {
		return err
	}
	defer pack.Close()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := pack.WriteArchive(context.Background(), pw, vma.None, 0, nil)
		pw.CloseWithError(err)
		done <- err
	}()
	err = c.Run(context.Background(), []string{"qmrestore", "-", strconv.Itoa(vmid), "--storage", "local-lvm"}, pr, nil, nil)
	pr.Close()
	if werr := <-done; err == nil {
		err = werr
	}
	return err
}

func reportWire(b *testing.B, size, wire, stream int64) {
	b.ReportMetric(float64(wire)/(1<<20), "wire-MiB")
	b.ReportMetric(float64(stream)/(1<<20), "stream-MiB")
	b.ReportMetric(float64(wire)/float64(stream), "wire/stream")
	b.Logf("image %s: %s on the wire for a %s stream into qmrestore", formatBytes(size), formatBytes(wire), formatBytes(stream))
}

// countingProxy forwards TCP connections to an address and counts the
// bytes sent towards it.
type countingProxy struct {
	addr string
	port int
	up   atomic.Int64
}

func startCountingProxy(b *testing.B, target string) *countingProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	p := &countingProxy{addr: l.Addr().String(), port: l.Addr().(*net.TCPAddr).Port}
	var wg sync.WaitGroup
	b.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			wg.Add(2)
			go func() {
				defer wg.Done()
				io.Copy(countWriter{out, &p.up}, in)
				out.(*net.TCPConn).CloseWrite()
			}()
			go func() {
				defer wg.Done()
				io.Copy(in, out)
				in.(*net.TCPConn).CloseWrite()
				in.Close()
				out.Close()
			}()
		}
	}()
	return p
}

// countWriter counts what it writes as it goes, so the count is complete
// once the far side has answered.
type countWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// deployBenchImage generates the mixed image the deploy benchmarks send, in
// a folder of /dev/shm removed after the benchmark: 1 GiB, or
// VMATOOL_BENCH_DEPLOY_SIZE.
func deployBenchImage(b *testing.B, prefix string) (path string, size int64) {
	size = 1 << 30
	if s := os.Getenv("VMATOOL_BENCH_DEPLOY_SIZE"); s != "" {
		var err error
		if size, err = parseSize(s); err != nil {
			b.Fatal(err)
		}
	}
	if free := freeBytes("/dev/shm"); free < 2*size {
		b.Skipf("/dev/shm has %s free; the image needs %s", formatBytes(max(free, 0)), formatBytes(size))
	}
	dir, err := os.MkdirTemp("/dev/shm", prefix)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	path = filepath.Join(dir, "img.raw")
	if err := generate(path, genSpec{Kind: kindMixed, Size: size, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	return path, size
}
