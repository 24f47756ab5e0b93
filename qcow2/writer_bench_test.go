package qcow2_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"testing"

	"github.com/vmatool/vmatool/qcow2"
)

// memFile is a WriterFile in memory, so that the benchmark measures the
// writer rather than the disk.
type memFile struct{ b []byte }

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if end := off + int64(len(p)); end > int64(len(m.b)) {
		if end > int64(cap(m.b)) {
			m.b = append(m.b[:cap(m.b)], make([]byte, end-int64(cap(m.b)))...)
		}
		m.b = m.b[:end]
	}
	return copy(m.b[off:], p), nil
}

func (m *memFile) Truncate(size int64) error {
	if size > int64(len(m.b)) {
		_, err := m.WriteAt(make([]byte, size-int64(len(m.b))), int64(len(m.b)))
		return err
	}
	m.b = m.b[:size]
	return nil
}

var _ qcow2.WriterFile = (*memFile)(nil)

// BenchmarkWriter converts a 64 MiB disk like a system image (text that
// compresses 3-4 times, one random MiB in eight) with WriteFrom, to a
// file in memory, uncompressed and with each compression, on one worker
// and on all.
func BenchmarkWriter(b *testing.B) {
	const size = 64 << 20
	disk := bytes.NewReader(benchDisk(size))
	for _, comp := range writerCompressions {
		for _, workers := range []int{1, runtime.GOMAXPROCS(0)} {
			b.Run(fmt.Sprintf("%s/workers=%d", comp.name, workers), func(b *testing.B) {
				opts := append(slices.Clone(comp.opts), qcow2.WithWriterWorkers(workers))
				f := memFile{b: make([]byte, 0, size+size/8)} // grown once, not per run
				b.SetBytes(size)
				b.ReportAllocs()
				for b.Loop() {
					w, err := qcow2.NewWriter(&f, size, opts...)
					if err != nil {
						b.Fatal(err)
					}
					if err := w.WriteFrom(context.Background(), disk, nil); err != nil {
						b.Fatal(err)
					}
					if err := w.Close(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(f.b))/size, "ratio")
			})
		}
	}
}
