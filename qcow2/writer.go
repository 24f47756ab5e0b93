package qcow2

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/bits"
	"runtime"
	"sync"

	"github.com/vmatool/vmatool/internal/filekind"
	"github.com/vmatool/vmatool/internal/pipeline"
)

// Errors of the Writer, for errors.Is. They come wrapped with detail.
var (
	// ErrNotSeekable means the output of NewWriter is not a regular file
	// open for reading and writing: a pipe, a socket, a device or a
	// write-only descriptor. A qcow2 image is written out of order (its
	// tables last, at the end, and its header at the start), so it needs
	// random access.
	ErrNotSeekable = errors.New("qcow2 output must be a seekable regular file open for reading and writing")
	// ErrUnaligned means a WriteAt that does not cover whole clusters
	// inside the virtual disk. Only a write that ends at the end of the
	// disk may end inside a cluster.
	ErrUnaligned = errors.New("write is not whole clusters within the virtual disk")
	// ErrClusterWritten means a cluster that already holds data was
	// written again. Each cluster can be written once; a cluster written
	// only with zeros may be written again.
	ErrClusterWritten = errors.New("cluster already written")
	// ErrWriterClosed means the Writer was used after Close or Abort.
	ErrWriterClosed = errors.New("qcow2 writer closed")
)

// Progress receives the number of bytes of the virtual disk processed since
// its last call. The Writer calls it from one goroutine at a time, in disk
// order.
type Progress interface {
	Update(n int64)
}

// WriterFile is where a Writer puts an image: an *os.File opened for
// reading and writing satisfies it. Reads are needed to update L2 tables
// that were written to the file early (see Writer); Truncate empties the
// file at the start and after a failure.
type WriterFile interface {
	io.ReaderAt
	io.WriterAt
	Truncate(size int64) error
}

// WriterOption configures NewWriter. Without options a Writer writes
// 64 KiB clusters, uncompressed, with GOMAXPROCS workers and 8 MiB of
// cached tables.
type WriterOption func(*writerOptions) error

type writerOptions struct {
	clusterSize  int64
	compress     bool
	compression  Compression
	zeroClusters bool
	workers      int
	cacheSize    int64
}

// WithClusterSize sets the cluster size in bytes, a power of two from 512
// bytes to 2 MiB (default 64 KiB, qemu's).
func WithClusterSize(n int64) WriterOption {
	return func(o *writerOptions) error {
		if n < 1<<minClusterBits || n > 1<<maxClusterBits || n&(n-1) != 0 {
			return invalidOption("cluster size %d (want a power of two from 512 B to 2 MiB)", n)
		}
		o.clusterSize = n
		return nil
	}
}

// WithCompression stores each cluster compressed with c
// (CompressionZlib, qemu's default, or CompressionZstd) when that makes
// it smaller, as "qemu-img convert -c" does; clusters that do not shrink
// are stored as they are. The header records c.
func WithCompression(c Compression) WriterOption {
	return func(o *writerOptions) error {
		if c != CompressionZlib && c != CompressionZstd {
			return invalidOption("compression type %v", c)
		}
		o.compress, o.compression = true, c
		return nil
	}
}

// WithZeroClusters records clusters of zeros, and the holes WriteFrom
// skips, as zero clusters (reading as zeros whatever a backing file
// holds) instead of leaving them unallocated. It costs L2 tables for the
// whole disk; without it only clusters that hold data have tables. Use it
// for an image that will get a backing file, or when "qemu-img map" must
// report zeros rather than holes.
func WithZeroClusters() WriterOption {
	return func(o *writerOptions) error { o.zeroClusters = true; return nil }
}

// WithWriterWorkers sets how many goroutines read, classify and compress
// clusters (default GOMAXPROCS). It is capped so that the buffers in
// flight stay within 24 MiB. (The reader's WithWorkers counts the
// goroutines that decompress.)
func WithWriterWorkers(n int) WriterOption {
	return func(o *writerOptions) error {
		if n < 1 {
			return invalidOption("workers %d, want at least 1", n)
		}
		o.workers = n
		return nil
	}
}

// WithWriterCacheSize sets the memory, in bytes, for the tables kept in
// memory while the image is written (default 8 MiB: with 64 KiB clusters,
// about 128 L2 tables, mapping 64 GiB). It is capped at 32 MiB. The L1
// table comes first and is kept whole: 8 bytes per 512 MiB of disk with
// 64 KiB clusters, at most qemu's 32 MiB (512-byte clusters on a 128 GiB
// disk). L2 tables get the rest, and at least 4 are kept; those beyond it
// are written to the file early (see Writer).
func WithWriterCacheSize(n int64) WriterOption {
	return func(o *writerOptions) error {
		if n < 1 {
			return invalidOption("cache size %d, want at least 1", n)
		}
		o.cacheSize = min(n, maxWriterCacheSize)
		return nil
	}
}

// Defaults and limits of the writer.
const (
	defaultWriterClusterBits = 16
	defaultWriterCacheSize   = 8 << 20
	maxWriterCacheSize       = 32 << 20
	minWriterTables          = 4
	// writerJobBudget bounds the cluster buffers in flight (input, plus
	// compressed output when compressing), whatever the number of cores.
	writerJobBudget = 24 << 20
	// writerJobBytes is the input of one job: enough clusters that a job
	// costs far more than its trip through the pipeline, and reads of the
	// source are large.
	writerJobBytes = 1 << 20
	// writerHeaderLen is the header length qemu writes for version 3: the
	// 104 bytes, the compression type byte and padding to 8.
	writerHeaderLen = 112
	refcountOrder16 = 4
)

// writerState is where a Writer is in its life.
type writerState uint8

const (
	writerOpen writerState = iota
	writerClosed
	writerAborted
)

// Writer writes a qcow2 version 3 image of any virtual size to a file:
// clusters holding data are appended to the file as they come, in any
// order, and the tables that map them (L1, L2, refcounts) and the header
// are written by Close. Clusters of zeros and holes are left unallocated
// (or recorded as zero clusters, see WithZeroClusters), so the
// image is sparse. Clusters are classified and compressed on all cores;
// given the same writes in the same order it writes the same bytes.
//
// The header in cluster 0 is written last, so until Close succeeds the
// file is not a qcow2 image, and after a failure or Abort the Writer
// truncates it to nothing. It never renames or syncs: write to a
// temporary file, then Close, Sync and rename it into place, so that a
// crash never leaves a partial image under the final name.
//
// Memory is bounded whatever the virtual size: at most the cache size
// (WithWriterCacheSize) for the L1 table and the L2 tables (or the L1
// table and 4 L2 tables, if the L1 table alone is larger), the jobs in
// flight (at most 24 MiB) and a compressor per worker, a 1 MiB write
// buffer, one refcount block, and 8 bytes per refcount block written (one
// per cs²/2 bytes of file). L2 tables are only made for regions that hold
// data. When they exceed the cache, the least recently used one is
// written to the end of the file and dropped; a later write to a cluster
// it maps reads it back, updates it and writes it in place, at the same
// offset, when it is dropped again or at Close. In-order writes therefore write each table once; scattered
// writes cost a table read and write per miss, never memory.
//
// Refcounts are not kept per cluster either. The file only grows at its
// end, a cluster at a time, so every cluster below the end is in use, and
// its refcount is final once no more compressed clusters can be packed
// into it. Refcount blocks are filled in file order, and each is written
// as the next cluster of the file as soon as the file grows past the
// clusters it counts; compressed clusters then stop being packed into
// those. Close adds the last block and the refcount table.
//
// WriteAt and WriteFrom may be called from several goroutines; their work
// is serialised, apart from the compression workers. A Writer must end
// with Close or Abort, which stop its workers.
type Writer struct {
	f           WriterFile
	given       int64 // the size passed to NewWriter
	size        int64 // the virtual size in the header: given rounded up to 512
	cs          int64
	cbits       uint
	l2bits      uint // log2 of the entries of an L2 table
	compression Compression
	compress    bool
	zeroes      bool
	workers     int
	inFlight    int
	jobClusters int

	mu    sync.Mutex // serialises the public methods
	state writerState
	err   error // sticky: the first failure
	wrote bool  // clusters were submitted: WriteFrom must come first
	pipe  *pipeline.Ordered[clusterJob]
	codec *codec

	// While a pipeline runs these belong to its deliverer, and afterwards
	// to Close.
	tables l2Set
	space  fileSpace
}

// NewWriter starts an image of size bytes in f, which it empties first. A
// size that is not a multiple of 512 is rounded up, as qemu-img does,
// since qemu counts a disk in 512-byte sectors; Size reports the result.
//
// f must be a regular file open for reading and writing, or anything else
// with random access; NewWriter refuses a pipe or other stream with
// ErrNotSeekable.
func NewWriter(f WriterFile, size int64, options ...WriterOption) (*Writer, error) {
	opts := writerOptions{clusterSize: 1 << defaultWriterClusterBits, workers: runtime.GOMAXPROCS(0), cacheSize: defaultWriterCacheSize}
	for _, o := range options {
		if err := o(&opts); err != nil {
			return nil, err
		}
	}
	cs := opts.clusterSize
	if size < 0 || size > 1<<62 {
		return nil, fmt.Errorf("qcow2: virtual size %d: %w", size, ErrInvalidOption)
	}
	cbits := uint(bits.TrailingZeros64(uint64(cs)))
	l2bits := cbits - 3
	vsize := (size + 511) &^ 511
	l1n := (vsize + 1<<(cbits+l2bits) - 1) >> (cbits + l2bits)
	if l1n*entryBytes > maxL1Bytes {
		return nil, fmt.Errorf("qcow2: virtual size %d needs an L1 table of %d entries with %d-byte clusters, more than qemu's 32 MiB: %w",
			size, l1n, cs, ErrInvalidOption)
	}
	if err := checkWriterFile(f); err != nil {
		return nil, err
	}

	workers := opts.workers
	jobBytes := max(cs, writerJobBytes)
	jobMem := jobBytes
	if opts.compress {
		jobMem *= 2 // the compressed output beside the input
	}
	maxJobs := int(max(writerJobBudget/jobMem, 2))
	workers = min(workers, maxJobs-1)
	cache := opts.cacheSize

	w := &Writer{
		f: f, given: size, size: vsize, cs: cs, cbits: cbits, l2bits: l2bits,
		compression: opts.compression, compress: opts.compress, zeroes: opts.zeroClusters,
		workers: workers, inFlight: min(workers+2, maxJobs), jobClusters: int(jobBytes / cs),
	}
	w.tables.init(l1n, max(int((cache-l1n*entryBytes)/cs), minWriterTables))
	w.space.init(f, cbits)
	// Cluster 0 is the header's, written by Close.
	if _, err := w.space.reserve(cs); err != nil {
		return nil, err
	}
	if err := w.space.count(0, cs); err != nil {
		return nil, err
	}
	if w.compress {
		c, err := newCodec(w.compression, cs, workers)
		if err != nil {
			return nil, err
		}
		w.codec = c
	}
	return w, nil
}

// checkWriterFile refuses outputs without random access and empties the
// file.
func checkWriterFile(f WriterFile) error {
	if st, ok := f.(interface{ Stat() (fs.FileInfo, error) }); ok {
		fi, err := st.Stat()
		if err != nil {
			return fmt.Errorf("qcow2: output: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("qcow2: output %s is %s: %w", fi.Name(), filekind.Of(fi.Mode()), ErrNotSeekable)
		}
	}
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("qcow2: output: emptying it: %v: %w", err, ErrNotSeekable)
	}
	// An empty file reads as EOF; a write-only one fails, and would only
	// fail later, when an L2 table written early must be read back.
	var b [1]byte
	if _, err := f.ReadAt(b[:], 0); err != io.EOF {
		return fmt.Errorf("qcow2: output cannot be read back (%v): %w", err, ErrNotSeekable)
	}
	return nil
}

// Size returns the virtual size recorded in the image: the size given to
// NewWriter rounded up to a multiple of 512.
func (w *Writer) Size() int64 { return w.size }

// ClusterSize returns the cluster size in bytes.
func (w *Writer) ClusterSize() int64 { return w.cs }

// WriteAt writes whole clusters of the virtual disk: off must be a
// multiple of the cluster size, and so must len(p) unless the write ends
// at the end of the disk (the size given to NewWriter, or Size). Clusters
// may come in any order, each once; writing data to a cluster that holds
// data fails with ErrClusterWritten.
//
// WriteAt copies p and returns; the clusters are classified, compressed
// and written in the background, so an error writing them is returned by
// a later WriteAt or by Close. Any such error is final: the image cannot
// be completed, and Close reports it.
func (w *Writer) WriteAt(p []byte, off int64) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return 0, err
	}
	end := off + int64(len(p))
	switch {
	case off < 0 || end < off || end > w.size:
		return 0, fmt.Errorf("qcow2: write of %d bytes at %d: past the virtual size %d: %w", len(p), off, w.size, ErrUnaligned)
	case off&(w.cs-1) != 0 || (int64(len(p))&(w.cs-1) != 0 && end != w.given && end != w.size):
		return 0, fmt.Errorf("qcow2: write of %d bytes at %d: not whole %d-byte clusters: %w", len(p), off, w.cs, ErrUnaligned)
	case len(p) == 0:
		return 0, nil
	}
	if w.pipe == nil {
		w.pipe = w.newPipeline(nil, nil)
	}
	w.wrote = true
	jobBytes := w.jobClusters * int(w.cs)
	for pos := 0; pos < len(p); {
		j, err := w.pipe.Next()
		if err != nil {
			return pos, w.fail(err)
		}
		n := min(len(p)-pos, jobBytes)
		clusters := (n + int(w.cs) - 1) >> w.cbits
		v := &j.V
		v.reset(off+int64(pos), clusters, int64(n))
		buf := v.input(clusters << w.cbits)
		clear(buf[copy(buf, p[pos:pos+n]):])
		w.pipe.Submit(j)
		pos += n
	}
	return len(p), nil
}

// usable returns why the Writer cannot take more work, or nil.
func (w *Writer) usable() error {
	if w.state != writerOpen {
		return ErrWriterClosed
	}
	return w.err
}

// fail records err as the Writer's final error and returns the error to
// report.
func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return w.err
}

// closePipe waits for the clusters WriteAt submitted.
func (w *Writer) closePipe() error {
	if w.pipe == nil {
		return nil
	}
	err := w.pipe.Close()
	w.pipe = nil
	return err
}

// Close writes the remaining L2 tables, the L1 table, the refcounts and
// finally the header. After it returns nil the file is a complete image;
// after an error it is empty. Close does not close or sync the file. A
// second Close returns the first one's result.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch w.state {
	case writerClosed:
		return w.err
	case writerAborted:
		return ErrWriterClosed
	}
	w.state = writerClosed
	if err := w.closePipe(); err != nil {
		w.fail(err)
	}
	if w.err == nil {
		if err := w.finish(); err != nil {
			w.fail(err)
		}
	}
	w.release()
	if w.err != nil {
		w.f.Truncate(0) // the failure is what matters
	}
	return w.err
}

// Abort stops the Writer and empties the file, so that nothing of a
// partial image remains. After a successful Close it does nothing, so
// "defer w.Abort()" is a safe way to clean up on every error path. It
// returns the error of emptying the file, if any.
func (w *Writer) Abort() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != writerOpen {
		return nil
	}
	w.state = writerAborted
	if w.pipe != nil {
		w.pipe.Fail(ErrWriterClosed)
		w.closePipe()
	}
	w.fail(ErrWriterClosed)
	w.release()
	if err := w.f.Truncate(0); err != nil {
		return fmt.Errorf("qcow2: emptying the aborted image: %w", err)
	}
	return nil
}

// release drops the memory the Writer holds.
func (w *Writer) release() {
	if w.codec != nil {
		w.codec.close()
		w.codec = nil
	}
	w.tables.release()
	w.space.release()
}
