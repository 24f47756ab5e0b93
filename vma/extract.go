package vma

import (
	"context"
	"fmt"
	"io"
)

// ExtractOption configures Extract. Without options Extract writes sparse
// output into targets that read as zeros.
type ExtractOption func(*extractOptions) error

type extractOptions struct {
	writeZeros   bool
	writeZerosTo map[int]bool
}

// WithWriteZeros writes zero blocks out instead of skipping them. Use it
// when a target does not already read as zeros (a reused block device).
func WithWriteZeros() ExtractOption {
	return func(o *extractOptions) error { o.writeZeros = true; return nil }
}

// WithWriteZerosTo says per dev_id whether zero blocks are written, for
// targets of different kinds: qmrestore's map lines decide it per device,
// so storages that hand out zero-filled volumes are spared the zeros.
func WithWriteZerosTo(byDevice map[int]bool) ExtractOption {
	return func(o *extractOptions) error { o.writeZerosTo = byDevice; return nil }
}

// extractBuffers is how many extents may be in flight between the goroutine
// that decodes the stream and the one that writes the targets: enough to
// keep both busy, at 3.7 MiB each.
const extractBuffers = 3

// Extract reads the remaining extents of r and writes each device's data to
// its target in targets, keyed by dev_id, at the device's offsets. Zero
// blocks are not written (unless WithWriteZeros), so a fresh file truncated
// to the device size ends up sparse. Devices without a target are skipped:
// their data is read past and they are not checked for completeness. It
// returns nil only when the archive was complete and valid, its names
// included (Header.CheckNames), as Verify would find it; or, for a Reader
// made WithSalvage, when it has written what survived: Missing and Damage
// then say what did not.
func Extract(ctx context.Context, r *Reader, targets map[int]io.WriterAt, options ...ExtractOption) error {
	var opts extractOptions
	for _, o := range options {
		if err := o(&opts); err != nil {
			return err
		}
	}
	if r.started {
		return fmt.Errorf("vma: Extract after Next: %w", ErrOrder)
	}
	if err := r.hdr.CheckNames(); err != nil {
		r.err = err
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for id := range targets {
		if id < 1 || id > 255 || r.devs[id] == nil {
			return fmt.Errorf("vma: extract target for dev_id %d, which the archive does not have: %w", id, ErrUnknownDevice)
		}
	}
	for id := range r.devs {
		if r.devs[id] == nil {
			continue
		}
		if _, ok := targets[id]; !ok {
			r.SkipDevice(id)
		}
	}

	ew := extentWriter{targets: targets, devs: &r.devs}
	for id := range targets {
		ew.writeZeros[id] = opts.writeZeros
		if opts.writeZerosTo != nil {
			ew.writeZeros[id] = opts.writeZerosTo[id]
		}
	}
	if r.in.chunks != nil && r.salv == nil {
		return r.extractInPlace(ctx, &ew)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type item struct {
		buf []byte
		ext Extent
		err error
	}
	free := make(chan *item, extractBuffers)
	for range extractBuffers {
		free <- &item{}
	}
	full := make(chan *item, extractBuffers)
	go func() {
		defer close(full)
		for {
			var it *item
			select {
			case it = <-free:
			case <-ctx.Done():
				return
			}
			it.err = r.next(&it.buf, &it.ext, true)
			full <- it
			if it.err != nil {
				return
			}
		}
	}()

	for {
		var it *item
		select {
		case it = <-full:
		case <-ctx.Done():
			// The decoding goroutine may be blocked reading a pipe; it
			// finishes on its own once the read returns.
			r.err = ctx.Err()
			return r.err
		}
		if it == nil {
			return ctx.Err()
		}
		if it.err == io.EOF {
			// A cancellation that raced the last extent still counts: the
			// caller may have given up on the targets.
			r.err = ctx.Err()
			return r.err
		}
		if it.err != nil {
			r.err = it.err
			return it.err
		}
		if err := ew.write(&it.ext); err != nil {
			r.err = err
			return err
		}
		free <- it
	}
}

// extractInPlace is Extract for a decoder that hands over its own buffers
// (codec.ChunkReader): the caller's goroutine writes every block straight
// from the decoded chunk, while the decoder's workers run ahead, so the
// data is never copied between decoding and the target.
func (r *Reader) extractInPlace(ctx context.Context, ew *extentWriter) error {
	r.started = true
	var scratch [BlockSize]byte
	for {
		if err := ctx.Err(); err != nil {
			r.err = err
			return err
		}
		err := r.streamExtent(ew, &scratch)
		if err == io.EOF {
			// As in Extract: a cancellation that raced the end counts.
			r.err = ctx.Err()
			return r.err
		}
		if err != nil {
			r.err = err
			return err
		}
	}
}

// streamExtent reads the extent at r.off and writes its blocks through ew
// as they come out of the input. Its slots are checked before its data is
// read, since the data is not held; the errors are still those readExtent
// gives, a body cut short before bad slots.
func (r *Reader) streamExtent(ew *extentWriter, scratch *[BlockSize]byte) error {
	off := r.off
	h, size, err := r.readExtentHeader(&r.buf)
	if err != nil {
		return err
	}
	if err := r.takeSlots(&h, off, nil, size-extentHeaderSize, &r.ext); err != nil {
		if n, derr := r.in.discard(size - extentHeaderSize); derr != nil {
			return shortBody(off, size, extentHeaderSize+n, derr)
		}
		return err
	}
	got := extentHeaderSize
	// Blocks queued for writing point into the input's current chunk, so
	// they go out before anything that may move on to the next one.
	data := func() ([]byte, error) {
		if r.in.buffered() < BlockSize {
			if err := ew.flush(); err != nil {
				return nil, err
			}
		}
		b, n, err := r.in.block(scratch)
		got += n
		if err != nil {
			return nil, shortBody(off, size, got, err)
		}
		return b, nil
	}
	for _, bi := range h.info {
		id := bi.devID()
		if id == 0 {
			continue
		}
		if !r.devs[id].skip {
			if err := ew.cluster(int(id), bi.cluster(), bi.mask(), data); err != nil {
				return err
			}
			continue
		}
		n := countBlocks(bi.mask()) * BlockSize
		if r.in.buffered() < n {
			if err := ew.flush(); err != nil {
				return err
			}
		}
		k, err := r.in.discard(n)
		got += k
		if err != nil {
			return shortBody(off, size, got, err)
		}
	}
	r.ext.Offset, r.ext.Size = off, int64(size)
	r.off += int64(size)
	return ew.flush()
}

// extentWriter writes clusters to targets in runs: consecutive stored
// blocks that are also consecutive in the buffer they come from (the
// extent buffer, or the decoded chunk) go out in one WriteAt, up to a
// whole extent of full clusters.
type extentWriter struct {
	targets    map[int]io.WriterAt
	devs       *[256]*deviceState
	writeZeros [256]bool // by dev_id

	runDev  int
	runOff  int64
	runData []byte
}

func (ew *extentWriter) write(ext *Extent) error {
	for i := range ext.Clusters {
		c := &ext.Clusters[i]
		k := 0
		err := ew.cluster(c.Device, c.Index, c.Mask, func() ([]byte, error) {
			k++
			return c.Data[(k-1)*BlockSize : k*BlockSize], nil
		})
		if err != nil {
			return err
		}
	}
	return ew.flush()
}

// cluster writes one cluster; data returns its stored blocks in turn, and
// is called for each of them, those past the device's end included, so
// that a stream is read past them.
func (ew *extentWriter) cluster(dev int, index uint32, mask uint16, data func() ([]byte, error)) error {
	size := ew.devs[dev].dev.Size
	base := int64(index) * ClusterSize
	writeZeros := ew.writeZeros[dev]
	for b := 0; b < BlocksPerCluster; b++ {
		off := base + int64(b)*BlockSize
		var blk []byte
		if mask&(1<<b) != 0 {
			var err error
			if blk, err = data(); err != nil {
				return err
			}
			if !writeZeros && isZero(blk) {
				blk = nil
			}
		} else if writeZeros {
			blk = zeroBlock[:]
		}
		if off >= size {
			continue // a lenient reader's block past the end
		}
		if blk == nil {
			if err := ew.flush(); err != nil {
				return err
			}
			continue
		}
		blk = blk[:min(int64(len(blk)), size-off)]
		if err := ew.add(dev, off, blk); err != nil {
			return err
		}
	}
	return nil
}

func (ew *extentWriter) add(dev int, off int64, blk []byte) error {
	n := len(ew.runData)
	if n > 0 && dev == ew.runDev && off == ew.runOff+int64(n) && contiguous(ew.runData, blk) {
		ew.runData = ew.runData[:n+len(blk)]
		return nil
	}
	if err := ew.flush(); err != nil {
		return err
	}
	ew.runDev, ew.runOff, ew.runData = dev, off, blk
	return nil
}

// contiguous reports whether b starts right where a ends in one backing
// array, so a[:len(a)+len(b)] is their concatenation. The zero block is a
// separate array, so runs of written zeros only join each other.
func contiguous(a, b []byte) bool {
	if cap(a) < len(a)+len(b) {
		return false
	}
	ext := a[len(a) : len(a)+len(b)]
	return len(b) > 0 && &ext[0] == &b[0]
}

func (ew *extentWriter) flush() error {
	if len(ew.runData) == 0 {
		return nil
	}
	d := ew.devs[ew.runDev].dev
	if _, err := ew.targets[ew.runDev].WriteAt(ew.runData, ew.runOff); err != nil {
		return fmt.Errorf("vma: writing %s at offset %d: %w", d.Name, ew.runOff, err)
	}
	ew.runData = nil
	return nil
}
