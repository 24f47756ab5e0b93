package qcow2

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/vmatool/vmatool/internal/pipeline"
)

var errNegativeOffset = errors.New("qcow2: negative offset")

// ReadAt reads len(p) bytes of the virtual disk starting at off. A read
// that reaches Size returns the bytes before it and io.EOF. Compressed
// clusters in the range are decompressed in parallel, so large reads
// (a few MiB) are the fast way to stream a compressed image.
func (img *Image) ReadAt(p []byte, off int64) (int, error) {
	if img.closed.Load() {
		return 0, ErrClosed
	}
	if off < 0 {
		return 0, errNegativeOffset
	}
	if off >= img.size {
		return 0, io.EOF
	}
	var eof error
	if int64(len(p)) > img.size-off {
		p, eof = p[:img.size-off], io.EOF
	}
	if err := img.read(p, off); err != nil {
		return 0, err
	}
	return len(p), eof
}

// job is one compressed cluster to decompress into dst, which is the part
// of the cluster starting inner bytes into it.
type job struct {
	dst   []byte
	inner int64
	off   int64 // guest offset of dst, for error messages
	entry uint64
	where int64
}

// jobLists recycles the per-read list of compressed clusters.
var jobLists = sync.Pool{New: func() any { return new([]job) }}

// read fills p from guest offset off; [off, off+len(p)) is within Size.
// Zeros, backing data and uncompressed data are copied while walking the
// L2 tables; compressed clusters are gathered and then decompressed in
// parallel.
func (img *Image) read(p []byte, off int64) error {
	jl := jobLists.Get().(*[]job)
	jobs := (*jl)[:0]
	defer func() {
		clear(jobs) // drop the references to p
		*jl = jobs[:0]
		jobLists.Put(jl)
	}()
	err := img.walk(off, off+int64(len(p)), 0, func(r run) error {
		dst := p[r.off-off : r.off-off+r.n]
		switch r.kind {
		case kindZero:
			clear(dst)
		case kindUnallocated:
			switch {
			case img.backing != nil:
				if err := img.backing.readAt(dst, r.off); err != nil {
					return img.wrapBackingErr(err)
				}
			case img.skipped:
				return img.backingErr("", fmt.Errorf("%w (SkipBacking): guest offset %#x reads from it", ErrBackingSkipped, r.off))
			default:
				clear(dst)
			}
		case kindData:
			return img.readData(dst, r.host, r.where)
		case kindCompressed:
			jobs = append(jobs, job{dst: dst, inner: r.off & (img.clusterSize - 1), off: r.off, entry: r.entry, where: r.where})
		}
		return nil
	})
	if err != nil {
		return err
	}
	return img.decompressAll(jobs)
}

// readData reads uncompressed guest data at host offset host of the image
// (or external data) file. qemu would read zeros past the end of the file,
// but qemu never writes an image like that: it is a truncated file, and
// its lost data is reported rather than replaced by zeros.
func (img *Image) readData(dst []byte, host, where int64) error {
	if end := host + int64(len(dst)); end > img.dataSize || end < host {
		return formatErr(where, ErrTruncated, "data at %#x (%d bytes) past the end of the %s (%d bytes)", host, len(dst), img.dataName(), img.dataSize)
	}
	m, err := img.data.ReadAt(dst, host)
	if m < len(dst) {
		if err == nil || err == io.EOF {
			return formatErr(host+int64(m), ErrTruncated, "short read of the %s", img.dataName())
		}
		return fmt.Errorf("qcow2: reading %s at offset %d: %w", img.dataName(), host, err)
	}
	return nil
}

func (img *Image) dataName() string {
	if img.extData {
		return "data file"
	}
	return "image file"
}

func roundUp(n, align int64) int64 { return (n + align - 1) &^ (align - 1) }

// decompressAll decompresses the jobs on up to the chain's workers, the
// calling goroutine among them, so a read with one compressed cluster
// starts no goroutine. The error is that of the first bad cluster, as a
// serial read would report it. Each job borrows a decoder from the pool
// only while it runs: the pool bounds the decoders of every read of the
// chain together, and a worker that finds no job left holds none.
func (img *Image) decompressAll(jobs []job) error {
	if len(jobs) == 0 {
		return nil // a read of uncompressed data allocates nothing, not even the closure
	}
	return pipeline.ForEach(len(jobs), img.sh.workers, func(i int) error {
		d := img.sh.decoders.get()
		defer img.sh.decoders.put(d)
		return img.decompress(d, &jobs[i])
	})
}

// compressedRange decodes a compressed L2 entry into the file offset and
// length of its data (qcow2_parse_compressed_l2_entry). The offset need
// not be aligned; the length runs to the end of the entry's last 512-byte
// sector.
func (img *Image) compressedRange(entry uint64) (off, size int64) {
	x := 70 - img.clusterBits // bits of offset
	off = int64(entry & (1<<x - 1))
	sectors := int64(entry>>x&(1<<(img.clusterBits-8)-1)) + 1
	return off, sectors*512 - off&511
}

// decompress reads and inflates one compressed cluster into j.dst.
func (img *Image) decompress(d *decoder, j *job) error {
	coff, csize := img.compressedRange(j.entry)
	if coff >= img.fileSize {
		return formatErr(j.where, ErrTruncated, "compressed cluster for guest offset %#x at %#x, past the end of the file (%d bytes)", j.off, coff, img.fileSize)
	}
	// qemu reads the range through the file driver, which zero-fills a
	// short read at the end of the file. A range can end past the file's
	// end only within its last 512-byte sector: qemu writes the data and
	// rounds the length up to the sector.
	if end := coff + csize; end > roundUp(img.fileSize, 512) {
		return formatErr(j.where, ErrTruncated, "compressed cluster for guest offset %#x at %#x (%d bytes) runs %d bytes past the end of the file", j.off, coff, csize, end-img.fileSize)
	}
	full := j.inner == 0 && int64(len(j.dst)) == img.clusterSize
	key := clusterKey{image: img.id, entry: j.entry}
	if !full && img.sh.clusters.copyOut(key, j.dst, int(j.inner)) {
		return nil
	}
	in := d.input(int(csize))
	avail := min(csize, img.fileSize-coff)
	if err := readFull(img.r, in[:avail], coff); err != nil {
		return err
	}
	clear(in[avail:])
	out := j.dst
	if !full {
		out = d.cluster(int(img.clusterSize))
	}
	if err := d.decode(img.h.compressionType, out, in); err != nil {
		return formatErr(coff, ErrCorrupt, "compressed cluster for guest offset %#x (%s, %d bytes): %v", j.off, img.h.compressionType, csize, err)
	}
	if !full {
		copy(j.dst, out[j.inner:])
		img.sh.clusters.put(key, out)
	}
	return nil
}
