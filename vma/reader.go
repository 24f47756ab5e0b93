package vma

import (
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"
)

// maxReadHeaderSize bounds the header a Reader accepts. Proxmox's writer
// never exceeds 512 KiB; the cap keeps a hostile header_size from making
// the reader allocate gigabytes (and the buffer grows only as bytes
// arrive, so a short stream costs what it holds).
const maxReadHeaderSize = 4 << 20

// ReaderOption configures a Reader.
type ReaderOption func(*readerOptions) error

type readerOptions struct {
	lenientEnd bool
	salvage    bool
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
// Proxmox lets through. Made WithSalvage, it reads past damage instead and
// reports it (Damage, Missing).
type Reader struct {
	in      *input
	opts    readerOptions
	hdr     *Header
	devs    [256]*deviceState
	off     int64 // archive offset of the next extent
	err     error // sticky
	started bool
	buf     []byte
	ext     Extent
	watch   func(Cluster) // see OnCluster

	salv      *salvageState // set by WithSalvage
	failStage int           // where the last readExtent failed
	failSize  int64         // the failed extent's length, for failSlots
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
	rd := &Reader{in: newInput(r)}
	for _, o := range opts {
		if err := o(&rd.opts); err != nil {
			return nil, err
		}
	}
	h, err := readHeader(rd.in, maxReadHeaderSize)
	if err != nil {
		return nil, err
	}
	rd.hdr = h
	rd.off = h.Size
	if rd.opts.salvage {
		// The search for the next intact header puts bytes back in front
		// of the stream, so a salvaging Reader reads a plain one.
		rd.salv = &salvageState{in: &pushback{r: rd.in}}
		rd.in = newInput(rd.salv.in)
	}
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

// SkipDevice makes the reader read past device id's data without keeping
// track of it: its clusters are not checked for completeness, and Next
// still returns them. It must be called before the first Next; converters
// that want only some devices use it, as Extract does for devices without
// a target.
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
// it (Verify) holds at once when it has to read it from a plain stream:
// small enough to stay in the CPU cache, as cat's buffer does, instead of
// streaming every byte through memory.
const discardChunk = 128 << 10

// next reads one extent into *bufp, growing it as needed (never beyond one
// maximal extent), and fills ext with clusters that point into it. Without
// keep, the data blocks are skipped, not kept: clusters then have no Data.
// A salvaging Reader (WithSalvage) reads past damage here instead of
// failing.
func (r *Reader) next(bufp *[]byte, ext *Extent, keep bool) error {
	r.started = true
	if r.salv != nil {
		return r.salvageNext(bufp, ext, keep)
	}
	return r.readExtent(bufp, ext, keep)
}

// Where readExtent failed, for a salvaging Reader to decide how to go on.
const (
	failEnd    = iota // the stream ended or broke: nothing more can be read
	failHeader        // the extent header is bad: its length is unknown
	failSlots         // the header is sound but its slots break the rules
	failBody          // the stream ended inside the extent's data
)

// readExtent reads the extent at r.off. On failure it sets r.failStage
// (and r.failSize for failSlots) to say how far it got.
func (r *Reader) readExtent(bufp *[]byte, ext *Extent, keep bool) error {
	off := r.off
	h, size, err := r.readExtentHeader(bufp)
	if err != nil {
		return err
	}
	want := extentHeaderSize
	if keep {
		want = size
	}
	buf := *bufp
	if len(buf) < want {
		// Grow to a full extent at once: real archives soon need it, and
		// the bound is the format's, not the input's.
		nb := make([]byte, max(want, min(2*len(buf), maxExtentSize)))
		copy(nb, buf[:extentHeaderSize])
		*bufp, buf = nb, nb
	}
	var body []byte
	var n int
	if keep {
		body = buf[extentHeaderSize:size]
		n, err = r.in.readFull(body)
	} else {
		n, err = r.in.discard(size - extentHeaderSize)
	}
	if err != nil {
		got := extentHeaderSize + n
		err = shortBody(off, size, got, err)
		r.failStage = failBody
		if r.salv != nil {
			// The clusters whose data arrived whole are intact: the
			// header that places them passed its checksum.
			if r.takeSlots(&h, off, body, n, ext) == nil {
				ext.Offset, ext.Size = off, int64(got)
				r.off += int64(got)
			} else {
				ext.Clusters = ext.Clusters[:0]
			}
		}
		return err
	}
	r.failStage, r.failSize = failSlots, int64(size)
	if err := r.takeSlots(&h, off, body, size-extentHeaderSize, ext); err != nil {
		return err
	}
	ext.Offset, ext.Size = off, int64(size)
	r.off += int64(size)
	return nil
}

// readExtentHeader reads and checks the header of the extent at r.off into
// (*bufp)[:512] and returns it with the extent's size; at a clean end of
// the stream it returns checkComplete's result.
func (r *Reader) readExtentHeader(bufp *[]byte) (extentHeader, int, error) {
	off := r.off
	r.failStage = failEnd
	if cap(*bufp) < extentHeaderSize {
		*bufp = make([]byte, extentHeaderSize)
	}
	buf := (*bufp)[:cap(*bufp)]
	*bufp = buf
	n, err := r.in.readFull(buf[:extentHeaderSize])
	if n == 0 && err == io.EOF {
		return extentHeader{}, 0, r.checkComplete()
	}
	if err != nil {
		return extentHeader{}, 0, readErr(off+int64(n), err, ErrShortExtent, "extent header ends after %d of 512 bytes", n)
	}
	r.failStage = failHeader
	h, err := parseExtentHeader(buf, r.hdr.UUID, off)
	if err != nil {
		return h, 0, err
	}
	// Proxmox skips dev_id 0 slots whatever else they hold, and block_count
	// leaves their masks out, so a mask there stands for blocks the extent
	// does not carry. No writer makes one: it is damage or a trick.
	for i, bi := range h.info {
		if bi.devID() == 0 && bi.mask() != 0 {
			return h, 0, formatErr(off+extBlockInfo+8*int64(i), ErrUnusedSlot, "slot %d has dev_id 0 but mask 0x%04x (cluster %d)", i, bi.mask(), bi.cluster())
		}
	}
	if got := h.maskBlocks(); got != h.blockCount {
		return h, 0, formatErr(off+extBlockCount, ErrBlockCount, "block count %d, masks hold %d blocks", h.blockCount, got)
	}
	return h, extentHeaderSize + h.blockCount*BlockSize, nil
}

// shortBody is the error of an extent of size bytes at off whose stream
// failed after got of them.
func shortBody(off int64, size, got int, err error) error {
	return readErr(off+int64(got), err, ErrShortExtent,
		"extent at offset %d needs %d bytes, stream ends after %d", off, size, got)
}

// takeSlots checks the slots of extent h whose data lies within the first
// avail bytes of its body, and only if all pass records them and lists
// them in ext: an extent is taken whole or not at all, so a salvaging
// Reader that skips it has recorded none of its clusters. body is nil
// when the data is not kept.
func (r *Reader) takeSlots(h *extentHeader, off int64, body []byte, avail int, ext *Extent) error {
	// The slots to take, up to the first whose data is cut off.
	last := len(h.info)
	pos := 0
	for i, bi := range h.info {
		if bi.devID() == 0 {
			continue
		}
		n := countBlocks(bi.mask()) * BlockSize
		if pos+n > avail {
			last = i
			break
		}
		pos += n
	}
	// vmstate clusters must follow each other; vmNext tracks each VM state
	// device met in this extent, as recording would advance it.
	type vmCursor struct {
		id   uint8
		next uint32
	}
	vmNext := make([]vmCursor, 0, 2)
	for i, bi := range h.info[:last] {
		id := bi.devID()
		if id == 0 {
			continue
		}
		slotOff := off + extBlockInfo + 8*int64(i)
		d := r.devs[id]
		if d == nil {
			return formatErr(slotOff, ErrUnknownDevice, "slot %d names dev_id %d, which the header does not define", i, id)
		}
		if d.skip {
			continue
		}
		c := bi.cluster()
		if d.dev.IsVMState() {
			k := 0
			for k < len(vmNext) && vmNext[k].id != id {
				k++
			}
			if k == len(vmNext) {
				vmNext = append(vmNext, vmCursor{id, d.vmNext})
			}
			if err := r.checkVMState(c, vmNext[k].next, slotOff); err != nil {
				return err
			}
			vmNext[k].next = c + 1
		}
		// A cluster met earlier in this extent is not recorded yet.
		again := false
		for _, prev := range h.info[:i] {
			if prev.devID() == id && prev.cluster() == c {
				again = true
				break
			}
		}
		if err := r.account(d, c, bi.mask(), again, slotOff); err != nil {
			return err
		}
	}
	ext.Clusters = ext.Clusters[:0]
	pos = 0
	for _, bi := range h.info[:last] {
		id := bi.devID()
		if id == 0 {
			continue
		}
		mask, c := bi.mask(), bi.cluster()
		n := countBlocks(mask) * BlockSize
		var data []byte
		if body != nil {
			data = body[pos : pos+n]
		}
		pos += n
		d := r.devs[id]
		if d.skip {
			r.notify(id, c, mask)
			continue
		}
		if d.dev.IsVMState() {
			d.vmNext = c + 1
		}
		if !d.dev.IsVMState() || r.salv != nil {
			d.seen.add(c)
		}
		r.notify(id, c, mask)
		d.stored += int64(n)
		ext.Clusters = append(ext.Clusters, Cluster{Device: int(id), Index: c, Mask: mask, Data: data})
	}
	return nil
}

// checkVMState applies the order rule of the VM state: its clusters come
// in sequence from 0. A salvaging Reader accepts gaps, which are the
// clusters of damaged extents.
func (r *Reader) checkVMState(c, next uint32, slotOff int64) error {
	if c == next || (r.salv != nil && c > next) {
		return nil
	}
	return formatErr(slotOff, ErrVMStateOrder, "vmstate cluster %d, expected %d", c, next)
}

// account checks one cluster against the rules of restore_extent, plus an
// end check for mask-0 clusters that C only catches by accident. The VM
// state gets the end checks too, which C leaves out (its max_sector is
// unlimited): its size is the size of vmstate.bin, and data past it would
// be dropped without a word. It records nothing; again says the cluster
// came earlier in the same extent. The VM state's order rule
// (checkVMState) makes duplicates of it impossible.
func (r *Reader) account(d *deviceState, c uint32, mask uint16, again bool, slotOff int64) error {
	if int64(c) >= d.clusters {
		return formatErr(slotOff, ErrBeyondEnd, "cluster %d of %s, which has %d clusters", c, d.dev.Name, d.clusters)
	}
	if !d.dev.IsVMState() && (again || d.seen.has(c)) {
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
	if r.salv != nil {
		return io.EOF // what is missing is reported, not refused
	}
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
