package qcow2_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmatool/vmatool/qcow2"
)

// heapPeak samples the heap in use until stop is called, and returns the
// peak above what was in use at the start.
func heapPeak() (stop func() uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > base && ms.HeapInuse-base > peak.Load() {
				peak.Store(ms.HeapInuse - base)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak.Load()
	}
}

// TestWriterHuge writes a 16 TiB disk with a few MiB of data spread over
// 600 L2 tables, five times what the default cache holds, in random order
// with every table visited twice, so that tables are written early and
// read back. The heap must stay far below what the tables alone would
// take (37.5 MiB), and far below the 2 GiB that L2 tables for the whole
// disk would. It also writes the same disk with WriteFrom, which must
// skip the holes without work.
func TestWriterHuge(t *testing.T) {
	const (
		size    = 16 << 40
		cs      = 64 << 10
		span    = cs * cs / 8 // mapped by one L2 table: 512 MiB
		tables  = 600
		perSpan = 2
	)
	rng := rand.New(rand.NewPCG(16, 40))
	d := &chunkDisk{size: size}
	step := int64(size/span) / tables
	for i := range int64(tables) {
		base := i * step * span
		for k := range int64(perSpan) {
			off := base + (k*span/perSpan)&^(cs-1) + int64(rng.IntN(1000))*cs
			kind := fillPartial
			if i%50 == 0 {
				kind = fillRandom
			}
			d.add(off, fill(rng, kind, cs))
		}
	}
	d.add(size-cs, fill(rng, fillText, cs)) // the last cluster
	dir := t.TempDir()

	t.Run("shuffled", func(t *testing.T) {
		defer debug.SetGCPercent(debug.SetGCPercent(20))
		path := filepath.Join(dir, "huge.qcow2")
		stop := heapPeak()
		start := time.Now()
		writeImage(t, path, d, []qcow2.WriterOption{qcow2.WithCompression(qcow2.CompressionZstd), qcow2.WithWriterWorkers(2)}, shuffled, 1)
		elapsed := time.Since(start)
		peak := stop()
		t.Logf("16 TiB, %d clusters of data in %d tables: %v, heap peak %.1f MiB", len(d.chunks), tables, elapsed.Round(time.Millisecond), float64(peak)/(1<<20))
		if peak > 20<<20 {
			t.Errorf("heap grew by %.1f MiB, want under 20 MiB (8 MiB of tables, and the jobs)", float64(peak)/(1<<20))
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if max := int64(tables+8) * cs * 2; st.Size() > max {
			t.Errorf("file of %d bytes, want at most %d", st.Size(), max)
		}
		checkStructure(t, path)
		verifyImage(t, path, d, size)
		if haveQemu(t) {
			qemuCheck(t, path)
		}
	})
	t.Run("WriteFrom", func(t *testing.T) {
		path := filepath.Join(dir, "huge-from.qcow2")
		start := time.Now()
		writeImage(t, path, d, []qcow2.WriterOption{qcow2.WithCompression(qcow2.CompressionZlib)}, fromDisk, 1)
		if el := time.Since(start); el > 20*time.Second {
			t.Errorf("WriteFrom of a 16 TiB disk with %d clusters of data took %v", len(d.chunks), el)
		}
		checkStructure(t, path)
		verifyImage(t, path, d, size)
	})
}

// mixedDisk is a 1 GiB disk like a used system disk, with dataMiB MiB of
// data in runs of 64 KiB to 1 MiB: random, text, a repeated byte, written
// zeros, and sparse bytes, at unaligned offsets, with holes between.
func mixedDisk(seed uint64, size int64, dataMiB int) *chunkDisk {
	rng := rand.New(rand.NewPCG(seed, 1))
	d := &chunkDisk{size: size}
	gap := size / int64(dataMiB) // about one MiB of data per gap
	for off := int64(rng.IntN(4096)); off < size; {
		n := int64(64<<10) << rng.IntN(5)
		n = min(n+int64(rng.IntN(5000)), size-off)
		d.add(off, fill(rng, rng.IntN(fillKinds), int(n)))
		off += n + int64(rng.Int64N(gap))
	}
	return d
}

// TestWriterQemu1GiB writes a 1 GiB disk with a few MiB of mixed data,
// compressed with zlib and with zstd, with WriteFrom and with shuffled
// writes, and has qemu-img check it and compare it with the raw disk.
func TestWriterQemu1GiB(t *testing.T) {
	requireTool(t, "qemu-img")
	dir := t.TempDir()
	d := mixedDisk(1, 1<<30, 12)
	raw := filepath.Join(dir, "mixed.raw")
	d.writeRaw(t, raw)
	for _, comp := range writerCompressions[1:] {
		for _, order := range []writeOrder{fromDisk, shuffled} {
			t.Run(fmt.Sprintf("%s/%s", comp.name, order), func(t *testing.T) {
				path := filepath.Join(dir, comp.name+".qcow2")
				writeImage(t, path, d, comp.opts, order, 2)
				qemuCheck(t, path)
				qemuCompare(t, raw, path)
				ext := verifyImage(t, path, d, d.size)
				if !hasState(ext, qcow2.Compressed) || !hasState(ext, qcow2.Data) {
					t.Errorf("want compressed and uncompressed clusters: %v", ext)
				}
			})
		}
	}
}

// TestWriterConcurrentWriteAt writes disjoint clusters from several
// goroutines at once, as io.WriterAt allows.
func TestWriterConcurrentWriteAt(t *testing.T) {
	d := sparseTestDisk(11, 16<<10, 4<<20)
	path := filepath.Join(t.TempDir(), "c.qcow2")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := qcow2.NewWriter(f, d.size, qcow2.WithClusterSize(16<<10), qcow2.WithCompression(qcow2.CompressionZlib), qcow2.WithWriterCacheSize(1))
	if err != nil {
		t.Fatal(err)
	}
	cl := d.clusters(16 << 10)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			for i := g; i < len(cl); i += 4 {
				off := cl[i] << 14
				buf := make([]byte, min(16<<10, d.size-off))
				d.ReadAt(buf, off)
				if _, err := w.WriteAt(buf, off); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	checkStructure(t, path)
	verifyImage(t, path, d, (d.size+511)&^511)
}
