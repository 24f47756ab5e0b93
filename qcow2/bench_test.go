package qcow2_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/vmatool/vmatool/qcow2"
)

// benchChunk is what the VMA writer reads at a time: 58 clusters of 64 KiB.
const benchChunk = 58 << 16

// BenchmarkSequentialRead reads whole images front to back with ReadAt in
// VMA-writer-sized chunks, with one decompression worker and with all.
// With qemu-img it builds 64 MiB images of mostly text (so most clusters
// compress); without, it falls back to the small fixtures.
func BenchmarkSequentialRead(b *testing.B) {
	images := benchImages(b)
	for _, im := range images {
		for _, workers := range []int{1, runtime.GOMAXPROCS(0)} {
			b.Run(fmt.Sprintf("%s/workers=%d", im.name, workers), func(b *testing.B) {
				img, err := qcow2.New(im.r, qcow2.WithWorkers(workers))
				if err != nil {
					b.Fatal(err)
				}
				defer img.Close()
				buf := make([]byte, benchChunk)
				b.SetBytes(img.Size())
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					for off := int64(0); off < img.Size(); off += benchChunk {
						if _, err := img.ReadAt(buf, off); err != nil && err != io.EOF {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}

type benchImage struct {
	name string
	r    io.ReaderAt
}

func benchImages(b *testing.B) []benchImage {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		b.Logf("qemu-img not found: benchmarking the 4 MiB fixtures")
		var out []benchImage
		for _, n := range []string{"v3-64k.qcow2", "zlib-64k.qcow2", "zstd-64k.qcow2"} {
			out = append(out, benchImage{n, bytesReader(fixtureBytes(b, n))})
		}
		return out
	}
	dir := b.TempDir()
	raw := filepath.Join(dir, "bench.raw")
	if err := os.WriteFile(raw, benchDisk(64<<20), 0o644); err != nil {
		b.Fatal(err)
	}
	var out []benchImage
	for _, c := range []struct{ name, opts string }{
		{"plain-64k", ""},
		{"zlib-64k", "-c"},
		{"zstd-64k", "-c -o compression_type=zstd"},
		{"zlib-2m", "-c -o cluster_size=2M"},
	} {
		path := filepath.Join(dir, c.name+".qcow2")
		cmd := exec.Command("sh", "-c", fmt.Sprintf("qemu-img convert -f raw -O qcow2 %s %s %s", c.opts, raw, path))
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { f.Close() })
		out = append(out, benchImage{c.name, f})
	}
	return out
}

// benchDisk is size bytes like a system image: mostly text-like data that
// compresses 3-4 times, with one random MiB in every eight.
func benchDisk(size int) []byte {
	rng := rand.New(rand.NewPCG(5, 6))
	d := make([]byte, size)
	words := []string{"usr", "lib", "share", "nix", "store", "bin", "etc", "systemd", "kernel", "module", "\n", "/", " ", "="}
	for off := 0; off < size; {
		if (off>>20)%8 == 7 {
			end := min((off>>20+1)<<20, size)
			for ; off < end; off++ {
				d[off] = byte(rng.Uint32())
			}
			continue
		}
		w := words[rng.IntN(len(words))]
		off += copy(d[off:], w)
		if rng.IntN(4) == 0 {
			off += copy(d[off:], fmt.Sprintf("%x", rng.Uint32()))
		}
	}
	return d
}
