package ptable_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"slices"
	"testing"
	"unicode/utf16"

	"github.com/google/uuid"

	"github.com/vmatool/vmatool/internal/ptable"
)

var le = binary.LittleEndian

const (
	esp       = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	biosBoot  = "21686148-6449-6E6F-744E-656564454649"
	linuxFS   = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
	linuxSwap = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"
	diskGUID  = "5F5C2D9E-3A4B-4C6D-8E9F-A0B1C2D3E4F5"
)

type gptPart struct {
	index       int // entry number, 1-based
	typ, guid   string
	first, last uint64 // LBAs
	name        string
}

// mixedEndian encodes a GUID the way GPT stores it: the first three
// fields little-endian.
func mixedEndian(s string) []byte {
	u := uuid.MustParse(s)
	b := u[:]
	return []byte{b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]}
}

// buildGPT makes a disk of sectors sectors with a protective MBR, primary
// and backup GPT headers and 128-entry arrays, as sgdisk lays them out.
func buildGPT(sectors int64, sector int, parts []gptPart) []byte {
	d := make([]byte, sectors*int64(sector))
	// protective MBR
	e := d[446:]
	e[4] = 0xee
	le.PutUint32(e[8:], 1)
	le.PutUint32(e[12:], uint32(min(sectors-1, 0xffffffff)))
	d[510], d[511] = 0x55, 0xaa

	const count, esize = 128, 128
	array := make([]byte, count*esize)
	for _, p := range parts {
		a := array[(p.index-1)*esize:]
		copy(a, mixedEndian(p.typ))
		copy(a[16:], mixedEndian(p.guid))
		le.PutUint64(a[32:], p.first)
		le.PutUint64(a[40:], p.last)
		for i, u := range utf16.Encode([]rune(p.name)) {
			le.PutUint16(a[56+2*i:], u)
		}
	}
	arraySectors := int64(count * esize / sector)
	last := uint64(sectors - 1)
	header := func(my, alt, arrayLBA uint64) []byte {
		h := make([]byte, 92)
		copy(h, "EFI PART")
		le.PutUint32(h[8:], 0x00010000)
		le.PutUint32(h[12:], 92)
		le.PutUint64(h[24:], my)
		le.PutUint64(h[32:], alt)
		le.PutUint64(h[40:], uint64(2+arraySectors))
		le.PutUint64(h[48:], last-1-uint64(arraySectors))
		copy(h[56:], mixedEndian(diskGUID))
		le.PutUint64(h[72:], arrayLBA)
		le.PutUint32(h[80:], count)
		le.PutUint32(h[84:], esize)
		le.PutUint32(h[88:], crc32.ChecksumIEEE(array))
		le.PutUint32(h[16:], crc32.ChecksumIEEE(h))
		return h
	}
	s := int64(sector)
	copy(d[s:], header(1, last, 2))
	copy(d[2*s:], array)
	backupArray := int64(last) - arraySectors
	copy(d[backupArray*s:], array)
	copy(d[int64(last)*s:], header(last, 1, uint64(backupArray)))
	return d
}

// buildMBR makes a disk with the given 16-byte entries in its MBR and,
// for each EBR LBA, the two entries of that EBR.
func buildMBR(sectors int64, entries [4][16]byte, ebrs map[int64][2][16]byte) []byte {
	d := make([]byte, sectors*512)
	le.PutUint32(d[440:], 0xdeadbeef)
	for i, e := range entries {
		copy(d[446+16*i:], e[:])
	}
	d[510], d[511] = 0x55, 0xaa
	for lba, es := range ebrs {
		s := d[lba*512:]
		copy(s[446:], es[0][:])
		copy(s[462:], es[1][:])
		s[510], s[511] = 0x55, 0xaa
	}
	return d
}

func mbrEntry(boot bool, typ byte, start, size uint32) [16]byte {
	var e [16]byte
	if boot {
		e[0] = 0x80
	}
	e[4] = typ
	le.PutUint32(e[8:], start)
	le.PutUint32(e[12:], size)
	return e
}

func TestRead(t *testing.T) {
	const mib = 1 << 20
	gptParts := []gptPart{
		{1, biosBoot, "11111111-2222-3333-4444-555555555555", 2048, 4095, "bios"},
		{2, esp, "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE", 4096, 20479, "ESP"},
		{4, linuxFS, "01234567-89AB-CDEF-0123-456789ABCDEF", 20480, 65502, "nixos"},
	}
	gptWant := []ptable.Partition{
		{Index: 1, Start: 1 * mib, Size: 1 * mib, Type: biosBoot, TypeName: "BIOS boot", Name: "bios", GUID: "11111111-2222-3333-4444-555555555555"},
		{Index: 2, Start: 2 * mib, Size: 8 * mib, Type: esp, TypeName: "EFI System", Name: "ESP", GUID: "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE"},
		{Index: 4, Start: 10 * mib, Size: (65502 - 20480 + 1) * 512, Type: linuxFS, TypeName: "Linux filesystem", Name: "nixos", GUID: "01234567-89AB-CDEF-0123-456789ABCDEF"},
	}
	gpt := buildGPT(65536, 512, gptParts)

	// A 4 KiB-sector GPT: the same table in 4096-byte LBAs.
	gpt4k := buildGPT(8192, 4096, []gptPart{{1, linuxSwap, "11111111-2222-3333-4444-555555555555", 256, 1279, "swap"}})

	// The primary header's CRC is broken: the backup at the end is used.
	badPrimary := bytes.Clone(gpt)
	badPrimary[512+16] ^= 0xff

	// A header that claims a million entries, with a valid CRC.
	huge := bytes.Clone(gpt)
	le.PutUint32(huge[512+80:], 1<<20)
	le.PutUint32(huge[512+16:], 0)
	le.PutUint32(huge[512+16:], crc32.ChecksumIEEE(huge[512:512+92]))

	// MBR: a bootable Linux partition, swap, and an extended partition
	// with two logical partitions.
	mbrDisk := buildMBR(65536, [4][16]byte{
		mbrEntry(true, 0x83, 2048, 16384),
		mbrEntry(false, 0x82, 18432, 8192),
		mbrEntry(false, 0x05, 26624, 38912),
	}, map[int64][2][16]byte{
		26624: {mbrEntry(false, 0x83, 2048, 8192), mbrEntry(false, 0x05, 10240, 12288)},
		36864: {mbrEntry(false, 0x8e, 2048, 10240), {}},
	})
	mbrWant := []ptable.Partition{
		{Index: 1, Start: 2048 * 512, Size: 16384 * 512, Type: "0x83", TypeName: "Linux", Bootable: true},
		{Index: 2, Start: 18432 * 512, Size: 8192 * 512, Type: "0x82", TypeName: "Linux swap"},
		{Index: 3, Start: 26624 * 512, Size: 38912 * 512, Type: "0x05", TypeName: "Extended"},
		{Index: 5, Start: (26624 + 2048) * 512, Size: 8192 * 512, Type: "0x83", TypeName: "Linux"},
		{Index: 6, Start: (36864 + 2048) * 512, Size: 10240 * 512, Type: "0x8e", TypeName: "Linux LVM"},
	}
	loop := buildMBR(65536, [4][16]byte{mbrEntry(false, 0x0f, 2048, 8192)}, map[int64][2][16]byte{
		2048: {mbrEntry(false, 0x83, 63, 100), mbrEntry(false, 0x05, 0, 100)}, // next EBR is itself
	})

	// A FAT boot sector without a partition table: 55 AA, but its
	// "entries" are code and data.
	fat := make([]byte, 1<<20)
	copy(fat, "\xeb\x3c\x90mkfs.fat")
	for i := 446; i < 510; i++ {
		fat[i] = byte(i)
	}
	fat[510], fat[511] = 0x55, 0xaa

	tests := []struct {
		name   string
		disk   []byte
		typ    string
		sector int
		id     string
		parts  []ptable.Partition
		err    error
	}{
		{name: "gpt", disk: gpt, typ: ptable.TypeGPT, sector: 512, id: diskGUID, parts: gptWant},
		{name: "gpt 4k sectors", disk: gpt4k, typ: ptable.TypeGPT, sector: 4096, id: diskGUID, parts: []ptable.Partition{
			{Index: 1, Start: 1 * mib, Size: 4 * mib, Type: linuxSwap, TypeName: "Linux swap", Name: "swap", GUID: "11111111-2222-3333-4444-555555555555"}}},
		{name: "gpt from backup", disk: badPrimary, typ: ptable.TypeGPT, sector: 512, id: diskGUID, parts: gptWant},
		{name: "gpt huge array", disk: huge, err: ptable.ErrCorrupt},
		{name: "mbr with logical partitions", disk: mbrDisk, typ: ptable.TypeMBR, sector: 512, id: "deadbeef", parts: mbrWant},
		{name: "mbr EBR loop", disk: loop, err: ptable.ErrCorrupt},
		{name: "empty disk", disk: make([]byte, 1<<20), typ: ptable.TypeNone},
		{name: "tiny disk", disk: make([]byte, 100), typ: ptable.TypeNone},
		{name: "file system without table", disk: fat, typ: ptable.TypeNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ptable.Read(bytes.NewReader(tt.disk), int64(len(tt.disk)))
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Read = %+v, %v; want %v", got, err, tt.err)
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Type != tt.typ || got.SectorSize != tt.sector || got.ID != tt.id {
				t.Errorf("got type %q, sector %d, id %q", got.Type, got.SectorSize, got.ID)
			}
			if !slices.Equal(got.Partitions, tt.parts) {
				t.Errorf("partitions:\n got %+v\nwant %+v", got.Partitions, tt.parts)
			}
		})
	}
}
