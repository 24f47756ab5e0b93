package fuzz

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmatool/vmatool/internal/ptable"
	"github.com/vmatool/vmatool/qcow2"
)

// Bounds for one fuzz input: how much of the virtual disk is read, and how
// much of it is checked against NextData. They bound time, not memory: the
// image's own caps bound memory. Reading 64 MiB, as this target once did,
// made an input take tens of milliseconds (hundreds with the fuzzer's
// instrumentation) and the engine re-runs each new input many times over;
// 1 MiB still spans 16 clusters of the default 64 KiB, 32 L2 tables of
// 512-byte clusters and half a 2 MiB cluster, which is every path.
const (
	fuzzMaxRead  = 1 << 20
	fuzzMaxCheck = 256 << 10
	fuzzReadBuf  = 100_000   // a multiple of no cluster size: reads start and end mid-cluster
	fuzzSeedMax  = 512 << 10 // larger fixtures make slow seeds
)

// FuzzQcow2Open opens arbitrary bytes as a qcow2 image (its backing files
// and data file are the same bytes again), reads it, and checks that the
// allocation map never calls a range that holds data a hole. Nothing may
// panic; errors are fine.
func FuzzQcow2Open(f *testing.F) {
	seeds, _ := filepath.Glob("../testdata/qcow2/*.qcow2.gz")
	for _, name := range seeds {
		if b := qcow2Gunzip(f, name); len(b) <= fuzzSeedMax {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := qcow2.New(bytes.NewReader(data),
			qcow2.WithName("top"),
			qcow2.WithWorkers(1), // no decoder goroutines to start for a 1 MiB read
			qcow2.WithCacheSize(1<<20),
			qcow2.WithMaxBackingDepth(2),
			qcow2.WithDataFileReader(bytes.NewReader(data)),
			qcow2.WithBackingOpener(func(parent, name string) (*qcow2.BackingFile, error) {
				return &qcow2.BackingFile{ReaderAt: bytes.NewReader(data), Size: int64(len(data)), Name: name}, nil
			}))
		if err != nil {
			return
		}
		defer img.Close()
		size := min(img.Size(), fuzzMaxRead)

		// Read everything, in chunks that cut clusters.
		buf := make([]byte, fuzzReadBuf)
		for off := int64(0); off < size; off += int64(len(buf)) {
			n, err := img.ReadAt(buf, off)
			if err != nil && err != io.EOF {
				if n != 0 {
					t.Fatalf("ReadAt returned %d bytes with %v", n, err)
				}
				break
			}
		}

		// Extents must tile the range they are asked for.
		if ext, err := img.Extents(0, size); err == nil {
			pos := int64(0)
			for _, e := range ext {
				if e.Start != pos || e.Length <= 0 {
					t.Fatalf("extent %+v does not start at %d", e, pos)
				}
				pos += e.Length
			}
			if pos != size {
				t.Fatalf("extents end at %d, want %d", pos, size)
			}
		}

		// What NextData skips must read as zeros.
		check := min(size, fuzzMaxCheck)
		for off := int64(0); off < check; {
			start, end, err := img.NextData(off)
			if err != nil {
				break
			}
			if start < off || end < start || end > img.Size() || (start == end && start != img.Size()) {
				t.Fatalf("NextData(%d) = [%d, %d) with size %d", off, start, end, img.Size())
			}
			for pos := off; pos < min(start, check); {
				n := min(int64(len(buf)), min(start, check)-pos)
				if _, err := img.ReadAt(buf[:n], pos); err != nil && !errors.Is(err, io.EOF) {
					break
				}
				if !qcow2AllZero(buf[:n]) {
					t.Fatalf("NextData(%d) skips to %d, but [%d, %d) holds data", off, start, pos, pos+n)
				}
				pos += n
			}
			if start == end {
				break
			}
			off = end
		}
	})
}

// FuzzPartitionTable reads arbitrary bytes as a disk's partition table:
// vmatool reads the tables of qcow2 images it packs. It must not panic,
// and what it reports must lie within the disk's numbers.
func FuzzPartitionTable(f *testing.F) {
	mbr := make([]byte, 64<<10)
	copy(mbr[446:], []byte{0x80, 0, 0, 0, 0x83, 0, 0, 0, 0, 8, 0, 0, 0, 0x10, 0, 0})
	copy(mbr[462:], []byte{0, 0, 0, 0, 0x05, 0, 0, 0, 0, 0x18, 0, 0, 0, 0x08, 0, 0})
	mbr[510], mbr[511] = 0x55, 0xaa
	f.Add(mbr)
	f.Add(make([]byte, 4096))
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, err := ptable.Read(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		for _, p := range tab.Partitions {
			if p.Start < 0 || p.Size < 0 {
				t.Fatalf("partition %+v has a negative start or size", p)
			}
		}
	})
}

func qcow2Gunzip(t testing.TB, name string) []byte {
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func qcow2AllZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
