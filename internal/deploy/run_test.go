package deploy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmatool/vmatool/internal/deploy"
	"github.com/vmatool/vmatool/internal/deploy/nodetest"
	"github.com/vmatool/vmatool/internal/pve/pvesim"
)

// TestRunParallel deploys one source to three targets at once, by three
// paths, and returns the results in plan order.
func TestRunParallel(t *testing.T) {
	n := nodetest.Start(t)
	sim := pvesim.New(t, pvesim.WithNodes(importNode()))
	img, want := rawImage(t, t.TempDir(), "nixos.raw", 2<<20, 41)
	a := nodeTarget(n, 301, deploy.ViaSSH)
	a.Name = "a"
	b := nodeTarget(n, 302, deploy.ViaSSHStream)
	b.Name = "b"
	c := simTarget(t, sim, 303, deploy.ViaImport)
	c.Name = "c"
	res, _ := run(t, img, deploy.Options{Parallel: 3}, a, b, c)
	for i, name := range []string{"a", "b", "c"} {
		if res[i].Target != name || !res[i].OK {
			t.Errorf("result %d: %+v", i, res[i])
		}
	}
	for _, vmid := range []int{301, 302} {
		if _, disks := unpack(t, n.Received(vmid)); !bytes.Equal(disks["drive-scsi0"], want) {
			t.Errorf("VM %d: the restored disk differs", vmid)
		}
	}
	if !bytes.Equal(importedDisk(t, sim, 303, "scsi0"), want) {
		t.Error("VM 303: the imported disk differs")
	}
}

// TestRunCancelled: an interrupted upload leaves nothing on the node and
// runs no restore.
func TestRunCancelled(t *testing.T) {
	n := nodetest.Start(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "big.raw")
	b := make([]byte, 64<<20)
	rand.Read(b) // incompressible, so the upload takes a while
	writeFile(t, img, b)
	src, err := deploy.OpenSource(img)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := deploy.NewPlan(src, []deploy.Target{nodeTarget(n, 310, deploy.ViaSSH)}, deploy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := deploy.Run(ctx, plan, src, func(e deploy.Event) {
		if s, ok := e.(deploy.BytesSent); ok && s.Sent > 0 {
			cancel()
		}
	})
	if res[0].OK || !errors.Is(res[0].Err, context.Canceled) {
		t.Fatalf("result %+v", res[0])
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(dirNames(t, n.Dump)) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if names := dirNames(t, n.Dump); len(names) != 0 {
		t.Errorf("left on the node: %v", names)
	}
	if len(n.Calls("qmrestore")) != 0 {
		t.Error("qmrestore ran")
	}
	if _, err := os.Stat(n.Received(310)); err == nil {
		t.Error("qmrestore received something")
	}
}
