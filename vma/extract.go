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

	ew := extentWriter{targets: targets, devs: &r.devs}
	for id := range targets {
		ew.writeZeros[id] = opts.writeZeros
		if opts.writeZerosTo != nil {
			ew.writeZeros[id] = opts.writeZerosTo[id]
		}
	}
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

// extentWriter writes clusters to targets in runs: consecutive stored
// blocks that are also consecutive in the extent buffer go out in one
// WriteAt, up to a whole extent of full clusters.
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
		size := ew.devs[c.Device].dev.Size
		base := int64(c.Index) * ClusterSize
		writeZeros := ew.writeZeros[c.Device]
		k := 0
		for b := 0; b < BlocksPerCluster; b++ {
			off := base + int64(b)*BlockSize
			if off >= size {
				break
			}
			var blk []byte
			if c.Mask&(1<<b) != 0 {
				blk = c.Data[k*BlockSize : (k+1)*BlockSize]
				k++
				if !writeZeros && isZero(blk) {
					blk = nil
				}
			} else if writeZeros {
				blk = zeroBlock[:]
			}
			if blk == nil {
				if err := ew.flush(); err != nil {
					return err
				}
				continue
			}
			blk = blk[:min(int64(len(blk)), size-off)]
			if err := ew.add(c.Device, off, blk); err != nil {
				return err
			}
		}
	}
	return ew.flush()
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
