// Package ptable reads the partition table of a disk image (GPT or MBR)
// into plain structs, for "vmatool info" and for checks before packing.
//
// The parsing is go-diskfs' (partition/gpt and partition/mbr), run over an
// io.ReaderAt through a small adapter, so a qcow2 image is read in place.
// Sizes that go-diskfs would allocate from without a bound are checked
// first, and logical partitions in an MBR extended partition, which
// go-diskfs does not follow, are read by walking the EBR chain with
// go-diskfs' MBR parser.
package ptable

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"
)

// Table types.
const (
	TypeGPT  = "gpt"
	TypeMBR  = "mbr"
	TypeNone = "none"
)

// ErrCorrupt means the disk has a partition table that cannot be read:
// a GPT whose headers are both invalid, or a table whose sizes do not fit
// the disk.
var ErrCorrupt = errors.New("ptable: corrupt partition table")

// Table is a disk's partition table.
type Table struct {
	Type       string      `json:"type"`        // TypeGPT, TypeMBR or TypeNone
	SectorSize int         `json:"sector_size"` // logical sector size the table uses; 0 for TypeNone
	ID         string      `json:"id"`          // GPT disk GUID, or MBR disk signature (8 hex digits)
	Partitions []Partition `json:"partitions"`
}

// Partition is one entry of a Table.
type Partition struct {
	Index    int    `json:"index"` // number as Linux gives it: GPT entry number, MBR 1-4, logical 5 and up
	Start    int64  `json:"start"` // bytes from the start of the disk
	Size     int64  `json:"size"`  // bytes
	Type     string `json:"type"`  // GPT type GUID (upper case), or MBR type byte as "0x83"
	TypeName string `json:"type_name,omitempty"`
	Name     string `json:"name,omitempty"` // GPT partition name
	GUID     string `json:"guid,omitempty"` // GPT unique partition GUID
	Bootable bool   `json:"bootable,omitempty"`
}

// Limits on what a table may claim, far above real tables (128 GPT entries
// of 128 bytes; a few logical partitions).
const (
	maxGPTArrayBytes = 1 << 20
	maxLogical       = 256
)

// Read reads the partition table of the size-byte disk r. A disk with no
// recognizable table (including a file system without one) is TypeNone,
// not an error.
func Read(r io.ReaderAt, size int64) (t *Table, err error) {
	if size < 0 {
		return nil, errors.New("ptable: negative disk size")
	}
	// go-diskfs is third-party parsing of untrusted bytes: a panic in it
	// is reported as a corrupt table rather than taking the caller down.
	defer func() {
		if p := recover(); p != nil {
			t, err = nil, fmt.Errorf("%w: parser failed: %v", ErrCorrupt, p)
		}
	}()
	d := &disk{r: r, size: size}
	lba0 := make([]byte, 512)
	if n, err := d.ReadAt(lba0, 0); n < len(lba0) {
		if err == io.EOF || err == nil {
			return &Table{Type: TypeNone}, nil // too small for any table
		}
		return nil, fmt.Errorf("ptable: %w", err)
	}
	for _, sector := range []int{512, 4096} {
		t, found, err := readGPT(d, sector)
		if found || err != nil {
			return t, err
		}
	}
	return readMBR(d, lba0)
}

// readGPT reads a GPT with the given sector size. found is false when
// neither header is there.
func readGPT(d *disk, sector int) (t *Table, found bool, err error) {
	primary, errPrimary := gptHeader(d, int64(sector), int64(sector))
	backupAt := (d.size/int64(sector) - 1) * int64(sector)
	backup, errBackup := gptHeader(d, backupAt, int64(sector))
	if !primary && !backup {
		return nil, false, nil
	}
	// go-diskfs allocates what a header claims once its CRC matches, and
	// falls back to the backup when the primary is bad: both must be
	// sane before it reads either.
	if errPrimary != nil || errBackup != nil {
		return nil, true, errors.Join(errPrimary, errBackup)
	}
	g, err := gpt.Read(d, sector, sector)
	if err != nil {
		return nil, true, fmt.Errorf("%w: GPT: %v", ErrCorrupt, err)
	}
	t = &Table{Type: TypeGPT, SectorSize: sector, ID: g.GUID}
	for _, p := range g.Partitions {
		if p.End < p.Start {
			return nil, true, fmt.Errorf("%w: GPT partition %d ends (LBA %d) before it starts (LBA %d)", ErrCorrupt, p.Index, p.End, p.Start)
		}
		start, ok1 := mulSector(p.Start, sector)
		size, ok2 := mulSector(p.End-p.Start+1, sector)
		if !ok1 || !ok2 {
			return nil, true, fmt.Errorf("%w: GPT partition %d: LBA %d-%d out of range", ErrCorrupt, p.Index, p.Start, p.End)
		}
		t.Partitions = append(t.Partitions, Partition{
			Index:    p.Index,
			Start:    start,
			Size:     size,
			Type:     string(p.Type),
			TypeName: gptTypeNames[string(p.Type)],
			Name:     p.Name,
			GUID:     p.GUID,
		})
	}
	return t, true, nil
}

// gptHeader reports whether a GPT header with a valid CRC is at off, and
// checks the sizes it claims against the limits and the disk.
func gptHeader(d *disk, off, sector int64) (bool, error) {
	if off < 0 || off+sector > d.size {
		return false, nil
	}
	h := make([]byte, 512)
	if n, _ := d.ReadAt(h, off); n < len(h) || string(h[:8]) != "EFI PART" {
		return false, nil
	}
	le := binary.LittleEndian
	hsize := le.Uint32(h[12:])
	if hsize < 92 || hsize > 512 {
		return false, nil
	}
	crc := le.Uint32(h[16:])
	le.PutUint32(h[16:], 0)
	if crc32.ChecksumIEEE(h[:hsize]) != crc {
		return false, nil // go-diskfs ignores it too
	}
	arrayLBA, count, entrySize := le.Uint64(h[72:]), uint64(le.Uint32(h[80:])), uint64(le.Uint32(h[84:]))
	if entrySize != gpt.PartitionEntrySize {
		return true, fmt.Errorf("%w: GPT header at %d: %d-byte entries (want %d)", ErrCorrupt, off, entrySize, gpt.PartitionEntrySize)
	}
	if count*entrySize > maxGPTArrayBytes {
		return true, fmt.Errorf("%w: GPT header at %d: %d entries", ErrCorrupt, off, count)
	}
	if arrayLBA > uint64(d.size)/uint64(sector) || arrayLBA*uint64(sector)+count*entrySize > uint64(d.size) {
		return true, fmt.Errorf("%w: GPT header at %d: partition array at LBA %d past the end of the disk", ErrCorrupt, off, arrayLBA)
	}
	return true, nil
}

func mulSector(lba uint64, sector int) (int64, bool) {
	if lba > math.MaxInt64/uint64(sector) {
		return 0, false
	}
	return int64(lba) * int64(sector), true
}

// readMBR reads an MBR, following extended partitions.
func readMBR(d *disk, lba0 []byte) (*Table, error) {
	m, err := mbr.Read(d, 512, 512)
	if err != nil {
		// No 55 AA signature, or entries that are not partitions (a
		// file system's boot sector): no table.
		return &Table{Type: TypeNone}, nil
	}
	t := &Table{Type: TypeMBR, SectorSize: 512, ID: fmt.Sprintf("%08x", binary.LittleEndian.Uint32(lba0[440:]))}
	for _, p := range m.Partitions {
		if p.Type == mbr.Empty || p.Size == 0 {
			continue
		}
		t.Partitions = append(t.Partitions, mbrPartition(p, 0))
		if isExtended(p.Type) {
			logical, err := readLogical(d, int64(p.Start), int64(p.Size))
			if err != nil {
				return nil, err
			}
			t.Partitions = append(t.Partitions, logical...)
		}
	}
	return t, nil
}

func isExtended(t mbr.Type) bool {
	return t == mbr.ExtendedCHS || t == mbr.ExtendedLBA || t == mbr.LinuxExtended
}

func mbrPartition(p *mbr.Partition, base int64) Partition {
	return Partition{
		Index:    p.Index,
		Start:    (base + int64(p.Start)) * 512,
		Size:     int64(p.Size) * 512,
		Type:     fmt.Sprintf("0x%02x", byte(p.Type)),
		TypeName: mbrTypeNames[byte(p.Type)],
		Bootable: p.Bootable,
	}
}

// readLogical walks the chain of extended boot records of the extended
// partition at LBA ext. Each EBR is an MBR-shaped sector: its first entry
// is a logical partition relative to the EBR, its second the next EBR
// relative to ext.
func readLogical(d *disk, ext, extSize int64) ([]Partition, error) {
	var out []Partition
	seen := map[int64]bool{}
	for ebr := ext; ; {
		if seen[ebr] || len(out) >= maxLogical {
			return nil, fmt.Errorf("%w: extended partition at LBA %d: EBR chain loops or is too long", ErrCorrupt, ext)
		}
		seen[ebr] = true
		if ebr < ext || ebr >= ext+extSize || ebr > d.size/512-1 {
			return nil, fmt.Errorf("%w: EBR at LBA %d outside its extended partition", ErrCorrupt, ebr)
		}
		m, err := mbr.Read(&disk{r: d, size: d.size - ebr*512, base: ebr * 512}, 512, 512)
		if err != nil {
			return nil, fmt.Errorf("%w: EBR at LBA %d: %v", ErrCorrupt, ebr, err)
		}
		if p := m.Partitions[0]; p.Type != mbr.Empty && p.Size != 0 {
			lp := mbrPartition(p, ebr)
			lp.Index = 5 + len(out)
			out = append(out, lp)
		}
		next := m.Partitions[1]
		if next.Type == mbr.Empty || next.Size == 0 {
			return out, nil
		}
		ebr = ext + int64(next.Start)
	}
}
