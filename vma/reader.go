package vma

import (
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"
)

// DefaultMaxHeaderSize bounds the header a Reader accepts. Proxmox's writer
// never exceeds 512 KiB; the cap keeps a hostile header_size from making the
// reader allocate gigabytes.
const DefaultMaxHeaderSize = 4 << 20

// ReaderOption configures a Reader.
type ReaderOption func(*readerOptions) error

type readerOptions struct {
	maxHeaderSize int64
	lenientEnd    bool
}

// WithMaxHeaderSize changes the largest header the reader accepts (at least
// 512 KiB, the most Proxmox's writer produces).
func WithMaxHeaderSize(n int64) ReaderOption {
	return func(o *readerOptions) error {
		if n < maxHeaderSize {
			return fmt.Errorf("vma: max header size %d is below %d", n, maxHeaderSize)
		}
		o.maxHeaderSize = n
		return nil
	}
}

// WithLenientEnd accepts mask bits for blocks past a device's end, which
// writers before June 2020 could set for devices not aligned to 64 KiB. The
// blocks are still in Cluster.Data; Extract drops them.
func WithLenientEnd() ReaderOption {
	return func(o *readerOptions) error { o.lenientEnd = true; return nil }
}

// Reader reads an archive as a stream: the header eagerly, then one extent
// per Next call. It never seeks.
//
// Beyond Proxmox's own checks it requires every cluster of every device to
// appear exactly once: a stream that ends cleanly on an extent boundary but
// lacks clusters gives ErrMissingCluster instead of io.EOF. It also refuses
// an unused (dev_id 0) slot with a mask (ErrUnusedSlot) and VM-state
// clusters or blocks past the state's size (ErrBeyondEnd), both of which
// Proxmox lets through.
type Reader struct {
	r       io.Reader
	opts    readerOptions
	hdr     *Header
	devs    [256]*deviceState
	off     int64 // archive offset of the next extent
	err     error // sticky
	started bool
	buf     []byte
	ext     Extent
	watch   func(Cluster) // see OnCluster
}

type deviceState struct {
	dev      Device
	clusters int64
	seen     clusterSet
	skip     bool
	vmNext   uint32
	stored   int64 // stored block bytes
}

// Extent is one extent's clusters, in slot order.
type Extent struct {
	Offset   int64 // archive offset of the extent header
	Size     int64 // bytes on disk: header plus data blocks
	Clusters []Cluster
}

// Cluster is one 64 KiB cluster of a device.
type Cluster struct {
	Device int    // dev_id
	Index  uint32 // cluster number; the cluster starts at Index*ClusterSize
	Mask   uint16 // bit i set: 4 KiB block i is stored in Data
	// Data holds the stored blocks in bit order, 4096 bytes each. It is
	// only valid until the next call to Next.
	Data []byte
}

// Block returns block i (0..15) of the cluster, or nil if it is a zero block.
func (c *Cluster) Block(i int) []byte {
	if c.Mask&(1<<i) == 0 {
		return nil
	}
	k := bits.OnesCount16(c.Mask & (1<<i - 1))
	return c.Data[k*BlockSize : (k+1)*BlockSize]
}

// NewReader reads and checks the archive header from r.
func NewReader(r io.Reader, opts ...ReaderOption) (*Reader, error) {
	rd := &Reader{r: r, opts: readerOptions{maxHeaderSize: DefaultMaxHeaderSize}}
	for _, o := range opts {
		if err := o(&rd.opts); err != nil {
			return nil, err
		}
	}
	h, err := readHeader(r, rd.opts.maxHeaderSize)
	if err != nil {
		return nil, err
	}
	rd.hdr = h
	rd.off = h.Size
	for _, d := range h.Devices {
		rd.devs[d.ID] = &deviceState{dev: d, clusters: d.Clusters()}
	}
	return rd, nil
}

func readHeader(r io.Reader, limit int64) (*Header, error) {
	fixed := make([]byte, headerFixedSize)
	n, err := io.ReadFull(r, fixed)
	if n >= 4 && string(fixed[:4]) != string(headerMagic[:]) {
		return nil, formatErr(0, ErrNotVMA, "first bytes are %q", fixed[:4])
	}
	if err != nil {
		return nil, readErr(int64(n), err, ErrShortHeader, "header ends after %d of %d bytes", n, headerFixedSize)
	}
	size := int64(be.Uint32(fixed[hdrSize:]))
	if size <= headerFixedSize {
		return nil, formatErr(hdrSize, ErrHeaderSize, "header size %d, must be more than %d", size, headerFixedSize)
	}
	if size > limit {
		return nil, formatErr(hdrSize, ErrHeaderSize, "header size %d exceeds the limit of %d", size, limit)
	}
	// The buffer grows as bytes arrive, so a stream that claims a large
	// header but ends early costs what it holds, not what it claims.
	b := fixed
	for int64(len(b)) < size {
		if len(b) == cap(b) {
			b = slices.Grow(b, int(min(size, 2*int64(len(b))))-len(b))
		}
		n, err := io.ReadFull(r, b[len(b):min(int64(cap(b)), size)])
		b = b[:len(b)+n]
		if err != nil {
			return nil, readErr(int64(len(b)), err, ErrShortHeader, "header ends after %d of %d bytes", len(b), size)
		}
	}
	return parseHeader(b)
}

// readErr turns a short read into a format error of the given kind and
// passes other I/O errors through with the offset.
func readErr(off int64, err error, kind error, format string, args ...any) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return formatErr(off, kind, format, args...)
	}
	return fmt.Errorf("vma: reading at offset %d: %w", off, err)
}

// Header returns the archive header.
func (r *Reader) Header() *Header { return r.hdr }

// Offset returns how many archive bytes have been consumed.
func (r *Reader) Offset() int64 { return r.off }

// SkipDevice makes Next leave out the clusters of device id, and exempts it
// from the completeness check; its data is still read past. It must be
// called before the first Next.
func (r *Reader) SkipDevice(id int) error {
	if r.started {
		return fmt.Errorf("vma: SkipDevice after Next: %w", ErrOrder)
	}
	if id < 0 || id > 255 || r.devs[id] == nil {
		return fmt.Errorf("vma: no device with id %d: %w", id, ErrUnknownDevice)
	}
	r.devs[id].skip = true
	return nil
}

// StoredBytes returns the bytes of stored (non-zero) blocks read so far for
// device id.
func (r *Reader) StoredBytes(id int) int64 {
	if id < 0 || id > 255 || r.devs[id] == nil {
		return 0
	}
	return r.devs[id].stored
}

// Next returns the next extent. At a clean end of a complete archive it
// returns io.EOF. The extent and its data are valid until the next call.
func (r *Reader) Next() (*Extent, error) {
	if r.err != nil {
		return nil, r.err
	}
	if err := r.next(&r.buf, &r.ext, true); err != nil {
		r.err = err
		return nil, err
	}
	return &r.ext, nil
}

// discardChunk is how much of an extent's data a reader that does not keep
// it (Verify) holds at once: small enough to stay in the CPU cache, as
// cat's buffer does, instead of streaming every byte through memory.
const discardChunk = 128 << 10

// next reads one extent into *bufp, growing it as needed (never beyond one
// maximal extent), and fills ext with clusters that point into it. Without
// keep, the data blocks are still read, in small pieces, but not kept:
// clusters then have no Data.
func (r *Reader) next(bufp *[]byte, ext *Extent, keep bool) error {
	r.started = true
	off := r.off
	if cap(*bufp) < extentHeaderSize {
		*bufp = make([]byte, extentHeaderSize)
	}
	buf := (*bufp)[:cap(*bufp)]
	n, err := io.ReadFull(r.r, buf[:extentHeaderSize])
	if n == 0 && err == io.EOF {
		return r.checkComplete()
	}
	if err != nil {
		return readErr(off+int64(n), err, ErrShortExtent, "extent header ends after %d of 512 bytes", n)
	}
	h, err := parseExtentHeader(buf, r.hdr.UUID, off)
	if err != nil {
		return err
	}
	// Proxmox skips dev_id 0 slots whatever else they hold, and block_count
	// leaves their masks out, so a mask there stands for blocks the extent
	// does not carry. No writer makes one: it is damage or a trick.
	for i, bi := range h.info {
		if bi.devID() == 0 && bi.mask() != 0 {
			return formatErr(off+extBlockInfo+8*int64(i), ErrUnusedSlot, "slot %d has dev_id 0 but mask 0x%04x (cluster %d)", i, bi.mask(), bi.cluster())
		}
	}
	if got := h.maskBlocks(); got != h.blockCount {
		return formatErr(off+extBlockCount, ErrBlockCount, "block count %d, masks hold %d blocks", h.blockCount, got)
	}
	size := extentHeaderSize + h.blockCount*BlockSize
	want := size
	if !keep {
		want = min(size, extentHeaderSize+discardChunk)
	}
	if len(buf) < want {
		// Grow to a full extent at once: real archives soon need it, and
		// the bound is the format's, not the input's.
		nb := make([]byte, max(want, min(2*len(buf), maxExtentSize)))
		copy(nb, buf[:extentHeaderSize])
		*bufp, buf = nb, nb
	}
	var body []byte
	if keep {
		body = buf[extentHeaderSize:size]
	}
	for got := extentHeaderSize; got < size; {
		var chunk []byte
		if keep {
			chunk = buf[got:size]
		} else {
			chunk = buf[extentHeaderSize : extentHeaderSize+min(size-got, len(buf)-extentHeaderSize)]
		}
		n, err := io.ReadFull(r.r, chunk)
		got += n
		if err != nil {
			return readErr(off+int64(got), err, ErrShortExtent,
				"extent at offset %d needs %d bytes, stream ends after %d", off, size, got)
		}
	}
	ext.Offset, ext.Size = off, int64(size)
	ext.Clusters = ext.Clusters[:0]
	pos := 0
	for i, bi := range h.info {
		id := bi.devID()
		if id == 0 {
			continue
		}
		slotOff := off + extBlockInfo + 8*int64(i)
		d := r.devs[id]
		if d == nil {
			return formatErr(slotOff, ErrUnknownDevice, "slot %d names dev_id %d, which the header does not define", i, id)
		}
		mask, c := bi.mask(), bi.cluster()
		n := bits.OnesCount16(mask) * BlockSize
		var data []byte
		if keep {
			data = body[pos : pos+n]
		}
		pos += n
		if d.skip {
			r.notify(id, c, mask)
			continue
		}
		if err := r.account(d, c, mask, slotOff); err != nil {
			return err
		}
		r.notify(id, c, mask)
		d.stored += int64(n)
		ext.Clusters = append(ext.Clusters, Cluster{Device: int(id), Index: c, Mask: mask, Data: data})
	}
	r.off += int64(size)
	return nil
}

// account applies the per-cluster rules of restore_extent, plus an end
// check for mask-0 clusters that C only catches by accident. The VM state
// gets the end checks too, which C leaves out (its max_sector is
// unlimited): its size is the size of vmstate.bin, and data past it would
// be dropped without a word.
func (r *Reader) account(d *deviceState, c uint32, mask uint16, slotOff int64) error {
	vmstate := d.dev.IsVMState()
	if vmstate {
		if c != d.vmNext {
			return formatErr(slotOff, ErrVMStateOrder, "vmstate cluster %d, expected %d", c, d.vmNext)
		}
		d.vmNext++
	}
	if int64(c) >= d.clusters {
		return formatErr(slotOff, ErrBeyondEnd, "cluster %d of %s, which has %d clusters", c, d.dev.Name, d.clusters)
	}
	if !vmstate && !d.seen.add(c) {
		return formatErr(slotOff, ErrDuplicateCluster, "cluster %d of %s appears twice", c, d.dev.Name)
	}
	if !r.opts.lenientEnd {
		if rest := d.dev.Size - int64(c)*ClusterSize; rest < ClusterSize {
			firstPast := (rest + BlockSize - 1) / BlockSize
			if mask>>firstPast != 0 {
				return formatErr(slotOff, ErrBeyondEnd, "cluster %d of %s stores a block past the device end (mask 0x%04x, size %d)",
					c, d.dev.Name, mask, d.dev.Size)
			}
		}
	}
	return nil
}

func (r *Reader) checkComplete() error {
	for _, d := range r.devs {
		if d == nil || d.skip || d.dev.IsVMState() || d.seen.count == d.clusters {
			continue
		}
		first := d.seen.firstMissing(d.clusters)
		return formatErr(r.off, ErrMissingCluster, "archive ends with %d of %d clusters of %s (dev %d) missing, the first is cluster %d",
			d.clusters-d.seen.count, d.clusters, d.dev.Name, d.dev.ID, first)
	}
	return io.EOF
}
