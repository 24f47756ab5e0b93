package qcow2_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmatool/vmatool/qcow2"
)

// TestWriterRunAcrossRefcountWindows writes runs of data clusters larger
// than a refcount window (cs/2 host clusters: 128 KiB with 512-byte
// clusters), so that one run's clusters close several windows, each of
// whose blocks lands past the run. Every cluster of the run must be
// counted before the blocks are.
func TestWriterRunAcrossRefcountWindows(t *testing.T) {
	for _, cs := range []int64{512, 1024, 4096} {
		for _, how := range []string{"WriteAt", "WriteFrom"} {
			t.Run(fmt.Sprintf("cluster %d/%s", cs, how), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(cs), 9))
				d := &chunkDisk{size: 5 << 20}
				for _, off := range []int64{0, 2 << 20, 3<<20 + 8*cs} {
					b := make([]byte, 1<<20+3*cs)
					for i := range b {
						b[i] = byte(rng.Uint32() | 1)
					}
					d.add(off, b)
				}
				path := filepath.Join(t.TempDir(), "w.qcow2")
				f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				w, err := qcow2.NewWriter(f, d.size, qcow2.WithClusterSize(cs))
				if err != nil {
					t.Fatal(err)
				}
				defer w.Abort()
				if how == "WriteAt" {
					for _, c := range d.chunks {
						if _, err := w.WriteAt(c.data, c.off); err != nil {
							t.Fatal(err)
						}
					}
				} else if err := w.WriteFrom(context.Background(), d, nil); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				verifyImage(t, path, d, d.size)
				checkStructure(t, path)
				if haveQemu(t) {
					qemuCheck(t, path)
				}
			})
		}
	}
}
