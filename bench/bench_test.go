package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/vmatool/vmatool/raw"
	"github.com/vmatool/vmatool/vma"
)

// The library benchmarks share one 256 MiB mixed image in /dev/shm and
// the archives packed from it, made on first use so that plain "go test"
// writes nothing.
const benchImageSize = 256 << 20

var fixture struct {
	once                 sync.Once
	dir                  string
	img, archive, zstArc string
	skip                 string
	err                  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fixture.dir != "" {
		os.RemoveAll(fixture.dir)
	}
	os.Exit(code)
}

func benchFiles(b *testing.B) (img, archive, zstArchive string) {
	b.Helper()
	fixture.once.Do(makeFixture)
	if fixture.skip != "" {
		b.Skip(fixture.skip)
	}
	if fixture.err != nil {
		b.Fatal(fixture.err)
	}
	return fixture.img, fixture.archive, fixture.zstArc
}

func makeFixture() {
	// Image, archive, its zstd copy and one unpacked disk at a time: about
	// 2.5x the image; ask for 4x to leave others room.
	const need = 4 * benchImageSize
	if free := freeBytes("/dev/shm"); free < need {
		fixture.skip = fmt.Sprintf("/dev/shm missing or short of space (%s free, need %s)", formatBytes(max(free, 0)), formatBytes(need))
		return
	}
	dir, err := os.MkdirTemp("/dev/shm", "vmatool-gobench-")
	if err != nil {
		fixture.err = err
		return
	}
	fixture.dir = dir
	fixture.img = filepath.Join(dir, "img.raw")
	fixture.archive = filepath.Join(dir, "archive.vma")
	fixture.zstArc = filepath.Join(dir, "archive.vma.zst")
	if fixture.err = generate(fixture.img, genSpec{Kind: kindMixed, Size: benchImageSize, Seed: 1}); fixture.err != nil {
		return
	}
	if fixture.err = writeArchive(fixture.img, fixture.archive, vma.None); fixture.err != nil {
		return
	}
	fixture.err = writeArchive(fixture.img, fixture.zstArc, vma.Zstd)
}

func writeArchive(img, out string, c vma.Compression) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	if c == vma.None {
		if err := packImage(img, f, 0); err != nil {
			return err
		}
		return f.Close()
	}
	zw, err := vma.Compress(f, c)
	if err != nil {
		return err
	}
	if err := packImage(img, zw, 0); err != nil {
		zw.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// packImage is what "vmatool pack" does for one raw disk, minus the
// config. workers 0 keeps the writer's default.
func packImage(img string, out io.Writer, workers int) error {
	d, err := raw.Open(img)
	if err != nil {
		return err
	}
	defer d.Close()
	var opts []vma.WriterOption
	if workers > 0 {
		opts = append(opts, vma.WithWorkers(workers))
	}
	w, err := vma.NewWriter(out, opts...)
	if err != nil {
		return err
	}
	id, err := w.AddDevice("drive-scsi0", d.Size())
	if err != nil {
		return err
	}
	if err := w.WriteDisk(context.Background(), id, d, nil); err != nil {
		return err
	}
	return w.Close()
}

// openArchive opens an archive the way the command does, compressed or not.
func openArchive(path string) (*vma.Reader, func(), error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	dr, _, err := vma.Decompress(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	r, err := vma.NewReader(dr)
	if err != nil {
		dr.Close()
		f.Close()
		return nil, nil, err
	}
	return r, func() { dr.Close(); f.Close() }, nil
}

func BenchmarkPack(b *testing.B) {
	img, _, _ := benchFiles(b)
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			b.SetBytes(benchImageSize)
			b.ReportAllocs()
			for b.Loop() {
				if err := packImage(img, io.Discard, workers); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkUnpack(b *testing.B) {
	_, archive, zstArchive := benchFiles(b)
	out := filepath.Join(fixture.dir, "unpacked.raw")
	for _, tc := range []struct{ name, path string }{{"vma", archive}, {"vma.zst", zstArchive}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(benchImageSize)
			b.ReportAllocs()
			for b.Loop() {
				if err := unpackOnce(tc.path, out); err != nil {
					b.Fatal(err)
				}
				// Deleting 190 MiB of tmpfs pages is not unpacking.
				b.StopTimer()
				os.Remove(out)
				b.StartTimer()
			}
		})
	}
}

// unpackOnce extracts the archive's one disk into a fresh sparse file.
func unpackOnce(archive, out string) error {
	r, done, err := openArchive(archive)
	if err != nil {
		return err
	}
	defer done()
	f, err := os.OpenFile(out, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	dev := r.Header().Devices[0]
	if err := f.Truncate(dev.Size); err != nil {
		return err
	}
	if err := vma.Extract(context.Background(), r, map[int]io.WriterAt{dev.ID: f}); err != nil {
		return err
	}
	return f.Close()
}

func BenchmarkVerify(b *testing.B) {
	_, archive, zstArchive := benchFiles(b)
	for _, tc := range []struct{ name, path string }{{"vma", archive}, {"vma.zst", zstArchive}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(benchImageSize)
			b.ReportAllocs()
			for b.Loop() {
				r, done, err := openArchive(tc.path)
				if err != nil {
					b.Fatal(err)
				}
				_, err = vma.Verify(context.Background(), r)
				done()
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
