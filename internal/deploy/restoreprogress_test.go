package deploy_test

import (
	"slices"
	"testing"

	"github.com/vmatool/vmatool/internal/deploy"
	"github.com/vmatool/vmatool/internal/deploy/nodetest"
	"github.com/vmatool/vmatool/internal/pve/pvesim"
)

// vmaPercents are the percentages vma extract -v prints restoring one
// disk of size bytes: one per whole percent of its 64 KiB clusters.
func vmaPercents(size int64) []float64 {
	var out []float64
	n := size / (64 << 10)
	for i := int64(1); i <= n; i++ {
		if p := float64(i * 100 / n); len(out) == 0 || out[len(out)-1] != p {
			out = append(out, p)
		}
	}
	return out
}

// restorePercents returns the RestoreProgress percentages in the order
// they came.
func (l *eventLog) restorePercents() []float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []float64
	for _, e := range l.events {
		if p, ok := e.(deploy.RestoreProgress); ok {
			out = append(out, p.Percent)
		}
	}
	return out
}

// TestRestoreProgress checks that every restore path reports the node's
// own progress: qmrestore's "progress N%" lines over SSH, and the task
// log's lines through the API (a restore's vma lines, an import's
// qemu-img "transferred ... (N%)"). The doubles restore for real, so a
// 1 MiB disk counts its 16 clusters.
func TestRestoreProgress(t *testing.T) {
	t.Run("ssh", func(t *testing.T) {
		n := nodetest.Start(t)
		img, _ := rawImage(t, t.TempDir(), "nixos.raw", 1<<20, 31)
		res, log := run(t, img, deploy.Options{}, nodeTarget(n, 140, deploy.ViaSSH))
		if !res[0].OK {
			t.Fatalf("result %+v", res[0])
		}
		if got, want := log.restorePercents(), vmaPercents(1<<20); !slices.Equal(got, want) {
			t.Errorf("restore progress %v, want %v", got, want)
		}
	})
	t.Run("ssh-stream", func(t *testing.T) {
		n := nodetest.Start(t)
		img, _ := rawImage(t, t.TempDir(), "nixos.raw", 1<<20, 32)
		res, log := run(t, img, deploy.Options{}, nodeTarget(n, 141, deploy.ViaSSHStream))
		if !res[0].OK {
			t.Fatalf("result %+v", res[0])
		}
		if got, want := log.restorePercents(), vmaPercents(1<<20); !slices.Equal(got, want) {
			t.Errorf("restore progress %v, want %v", got, want)
		}
	})
	t.Run("api", func(t *testing.T) {
		// The task runs for a few polls, so its log is read while it is
		// empty ("no content") before the lines come.
		s := newAPISetup(t, pvesim.WithTaskPolls(3))
		img, _ := rawImage(t, t.TempDir(), "nixos.raw", 1<<20, 33)
		res, log := run(t, img, deploy.Options{}, s.target(t, 142))
		if !res[0].OK {
			t.Fatalf("result %+v", res[0])
		}
		if got, want := log.restorePercents(), vmaPercents(1<<20); !slices.Equal(got, want) {
			t.Errorf("restore progress %v, want %v", got, want)
		}
	})
	t.Run("import", func(t *testing.T) {
		sim := pvesim.New(t, pvesim.WithNodes(importNode()), pvesim.WithTaskPolls(2))
		img, _ := rawImage(t, t.TempDir(), "nixos.raw", 1<<20, 34)
		res, log := run(t, img, deploy.Options{}, simTarget(t, sim, 143, deploy.ViaImport))
		if !res[0].OK {
			t.Fatalf("result %+v", res[0])
		}
		if got := log.restorePercents(); !slices.Equal(got, []float64{100}) {
			t.Errorf("restore progress %v, want [100]", got)
		}
	})
}
