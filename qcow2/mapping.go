package qcow2

import (
	"encoding/binary"
	"errors"
)

// kind is how a guest range reads, after qemu's cluster and subcluster
// types (qcow2_get_subcluster_type) are folded together.
type kind uint8

const (
	kindUnallocated kind = iota // from the backing file, or zeros
	kindZero                    // zeros, hiding the backing file
	kindData                    // uncompressed, at host offset
	kindCompressed              // one compressed cluster
)

// run is a guest range of one kind. Adjacent clusters merge into one run
// when they read alike: zero with zero, unallocated with unallocated, data
// with data that is contiguous in the file. A compressed run is always part
// of a single cluster.
type run struct {
	kind  kind
	off   int64  // guest offset
	n     int64  // length
	host  int64  // kindData: file offset of guest byte off
	entry uint64 // kindCompressed: the L2 entry (offset and size of the data)
	where int64  // file offset of the L2 entry, for error messages
}

// errStop ends a walk early without an error.
var errStop = errors.New("stop")

// errBudget ends a walk that has looked at maxEntries table entries; the
// runs up to there have been passed to fn.
var errBudget = errors.New("walk budget spent")

// walk calls fn for the runs that cover guest range [off, end), in order,
// with end <= img.size. It reads L2 tables through the cache; nothing else.
// With maxEntries > 0 it stops with errBudget after that many L1 and L2
// entries, which bounds the work of a search through a huge hostile image.
func (img *Image) walk(off, end, maxEntries int64, fn func(run) error) error {
	var pend run
	have := false
	emit := func(r run) error {
		if have && pend.kind == r.kind && pend.off+pend.n == r.off && r.kind != kindCompressed &&
			(r.kind != kindData || pend.host+pend.n == r.host) {
			pend.n += r.n
			return nil
		}
		if have {
			if err := fn(pend); err != nil {
				return err
			}
		}
		pend, have = r, true
		return nil
	}
	tableShift := img.clusterBits + img.l2Bits
	var l1 l1Cursor // the page of the L1 table this walk is in
	visited := int64(0)
	spent := func() bool {
		visited++
		return maxEntries > 0 && visited > maxEntries
	}
	for off < end {
		if spent() {
			break
		}
		l1i := off >> tableShift
		tableEnd := min(end, (l1i+1)<<tableShift)
		var entry uint64
		if l1i < img.l1Entries {
			if !l1.has(l1i) {
				if err := img.loadL1(&l1, l1i); err != nil {
					return err
				}
			}
			entry = l1.entry(l1i)
		}
		table, tableOff, err := img.l2Table(l1i, entry)
		if err != nil {
			return err
		}
		if table == nil {
			if err := emit(run{kind: kindUnallocated, off: off, n: tableEnd - off}); err != nil {
				return err
			}
			off = tableEnd
			continue
		}
		for off < tableEnd && !spent() {
			idx := (off >> img.clusterBits) & (1<<img.l2Bits - 1)
			clusterEnd := min(tableEnd, (off|(img.clusterSize-1))+1)
			var err error
			if img.extL2 {
				e := table[idx*extEntryBytes:]
				err = img.classifyExt(binary.BigEndian.Uint64(e), binary.BigEndian.Uint64(e[8:]),
					off, clusterEnd, tableOff+idx*extEntryBytes, emit)
			} else {
				err = img.classify(binary.BigEndian.Uint64(table[idx*entryBytes:]),
					off, clusterEnd, tableOff+idx*entryBytes, emit)
			}
			if err != nil {
				return err
			}
			off = clusterEnd
		}
	}
	if have {
		if err := fn(pend); err != nil {
			return err
		}
	}
	if off < end {
		return errBudget
	}
	return nil
}

// l2Table returns the L2 table that L1 entry l1i, whose value is entry,
// points at and its file offset, or nil when the entry maps nothing.
func (img *Image) l2Table(l1i int64, entry uint64) ([]byte, int64, error) {
	off := int64(entry & l1OffsetMask)
	if off == 0 {
		return nil, 0, nil
	}
	where := int64(img.h.l1Offset) + l1i*entryBytes
	if off&(img.clusterSize-1) != 0 {
		return nil, 0, formatErr(where, ErrCorrupt, "L1 entry %d: L2 table offset %#x not cluster-aligned", l1i, off)
	}
	key := tableKey{image: img.id, off: off}
	if t := img.sh.tables.get(key); t != nil {
		return t, off, nil
	}
	if off+img.clusterSize > img.fileSize {
		return nil, 0, formatErr(where, ErrTruncated, "L1 entry %d: L2 table at %#x ends past the end of the file (%d bytes)", l1i, off, img.fileSize)
	}
	t := make([]byte, img.clusterSize)
	if err := readFull(img.r, t, off); err != nil {
		return nil, 0, err
	}
	img.sh.tables.put(key, t)
	return t, off, nil
}

// classify emits the run for [off, end) of one cluster with a standard
// (64-bit) L2 entry.
func (img *Image) classify(entry uint64, off, end, where int64, emit func(run) error) error {
	if entry&l2Compressed != 0 {
		return img.compressed(entry, off, end, where, emit)
	}
	host := int64(entry & l2OffsetMask)
	allocated := host != 0 || img.extData && entry&l2Copied != 0
	if entry&l2ZeroFlag != 0 {
		if img.h.version < 3 {
			return formatErr(where, ErrCorrupt, "zero cluster entry %#x in a version 2 image", entry)
		}
		if allocated {
			if err := img.checkHost(host, off, where); err != nil {
				return err
			}
		}
		return emit(run{kind: kindZero, off: off, n: end - off})
	}
	if !allocated {
		return emit(run{kind: kindUnallocated, off: off, n: end - off})
	}
	if err := img.checkHost(host, off, where); err != nil {
		return err
	}
	return emit(run{kind: kindData, off: off, n: end - off, host: host + off&(img.clusterSize-1), where: where})
}

// classifyExt emits the runs for [off, end) of one cluster with an extended
// L2 entry: the 64-bit entry (bit 0 reserved) and the subcluster bitmap,
// whose low 32 bits mark allocated subclusters and high 32 bits zero ones.
func (img *Image) classifyExt(entry, bitmap uint64, off, end, where int64, emit func(run) error) error {
	if entry&l2Compressed != 0 {
		return img.compressed(entry, off, end, where, emit) // the bitmap is reserved
	}
	host := int64(entry & l2OffsetMask)
	allocated := host != 0 || img.extData && entry&l2Copied != 0
	alloc, zero := uint32(bitmap), uint32(bitmap>>32)
	if allocated {
		if alloc&zero != 0 {
			return formatErr(where, ErrCorrupt, "subclusters %#x both allocated and zero", alloc&zero)
		}
		if err := img.checkHost(host, off, where); err != nil {
			return err
		}
	} else if alloc != 0 {
		return formatErr(where, ErrCorrupt, "unallocated cluster with allocated subclusters %#x", alloc)
	}
	cluster := off &^ (img.clusterSize - 1)
	for off < end {
		sc := (off - cluster) >> img.subBits
		k := subKind(alloc, zero, sc)
		// Extend over the following subclusters of the same kind.
		next := cluster + (sc+1)<<img.subBits
		for next < end && subKind(alloc, zero, (next-cluster)>>img.subBits) == k {
			next += 1 << img.subBits
		}
		next = min(next, end)
		r := run{kind: k, off: off, n: next - off, where: where}
		if k == kindData {
			r.host = host + off - cluster
		}
		if err := emit(r); err != nil {
			return err
		}
		off = next
	}
	return nil
}

// subKind is how subcluster sc reads; alloc and zero were checked not to
// overlap.
func subKind(alloc, zero uint32, sc int64) kind {
	switch {
	case zero&(1<<sc) != 0:
		return kindZero
	case alloc&(1<<sc) != 0:
		return kindData
	}
	return kindUnallocated
}

// compressed emits the run of a compressed cluster; the data is checked
// when it is read.
func (img *Image) compressed(entry uint64, off, end, where int64, emit func(run) error) error {
	if img.extData {
		return formatErr(where, ErrCorrupt, "compressed cluster in an image with an external data file")
	}
	return emit(run{kind: kindCompressed, off: off, n: end - off, entry: entry, where: where})
}

// checkHost checks the host offset of an allocated cluster as qemu does
// (qcow2_get_host_offset): cluster-aligned, and equal to the guest offset
// in an external data file.
func (img *Image) checkHost(host, off, where int64) error {
	if host&(img.clusterSize-1) != 0 {
		return formatErr(where, ErrCorrupt, "cluster offset %#x not cluster-aligned", host)
	}
	if guest := off &^ (img.clusterSize - 1); img.extData && host != guest {
		return formatErr(where, ErrCorrupt, "data file cluster offset %#x does not match guest offset %#x", host, guest)
	}
	return nil
}
