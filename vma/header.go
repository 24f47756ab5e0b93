package vma

import (
	"crypto/md5"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Header is what an archive says before its data: identity, configs and
// devices.
type Header struct {
	UUID  uuid.UUID
	Ctime time.Time
	// Configs in slot order, as Proxmox lists them.
	Configs []Config
	// Devices in dev_id order.
	Devices []Device
	// Size is the number of bytes the header occupies in the archive; the
	// first extent starts there.
	Size int64
}

// Config is a named blob, normally qemu-server.conf and qemu-server.fw.
type Config struct {
	Name string
	Data []byte

	nameOff int64 // archive offset of Name, for errors
}

// Device is a disk (or the vmstate stream) stored in the archive.
type Device struct {
	ID   int    // dev_id, 1..254
	Name string // e.g. "drive-scsi0"
	Size int64  // bytes

	nameOff int64 // archive offset of Name, for errors
}

// Clusters is the number of 64 KiB clusters the archive records for d.
func (d Device) Clusters() int64 { return (d.Size + ClusterSize - 1) / ClusterSize }

// IsVMState reports whether d is the VM RAM-state stream rather than a disk.
func (d Device) IsVMState() bool { return d.Name == vmstateName }

const vmstateName = "vmstate"

// Device returns the device with the given name, if the archive has one.
func (h *Header) Device(name string) (Device, bool) {
	for _, d := range h.Devices {
		if d.Name == name {
			return d, true
		}
	}
	return Device{}, false
}

// Config returns the data of the first config with the given name.
func (h *Header) Config(name string) ([]byte, bool) {
	for _, c := range h.Configs {
		if c.Name == name {
			return c.Data, true
		}
	}
	return nil, false
}

// blobTable allocates header blobs exactly as Proxmox's allocate_header_blob
// does, because header_size depends on the growth rule and a byte-exact
// writer must reproduce it. One deliberate difference: C can under-allocate
// by one byte when (len+2)%512 == 0 (format doc §11.1); here growth repeats
// until the blob fits, which gives the same sizes in every other case.
type blobTable struct {
	buf  []byte // bytes [0, len(buf)) are used; byte 0 stays 0
	size int    // allocated bytes, a multiple of 512
}

func newBlobTable() *blobTable { return &blobTable{buf: []byte{0}} }

// blockSize is the space the table takes in the header. With no blob at all
// C allocates none, giving a header_size of 12288 that every reader refuses
// (format doc §2.6); one block keeps an archive with no configs and no
// devices readable. Any other table is sized as C sizes it.
func (t *blobTable) blockSize() int { return max(t.size, 512) }

func (t *blobTable) add(data []byte) (uint32, bool) {
	n := len(data)
	if n > maxBlobSize {
		return 0, false
	}
	pos := len(t.buf)
	if t.size < pos+n+2 {
		t.size += (n + 2 + 511) / 512 * 512
		for t.size < pos+n+2 {
			t.size += 512
		}
	}
	t.buf = append(t.buf, byte(n), byte(n>>8))
	t.buf = append(t.buf, data...)
	return uint32(pos), true
}

func (t *blobTable) addString(s string) (uint32, bool) {
	b := make([]byte, len(s)+1)
	copy(b, s)
	return t.add(b)
}

// marshalHeader lays out the header as vma_write_header does: configs'
// name and data blobs in order, then device names by dev_id. Devices must
// carry IDs 1..n in order.
func marshalHeader(h *Header) ([]byte, error) {
	t := newBlobTable()
	var names, datas [maxConfigs]uint32
	if len(h.Configs) > maxConfigs {
		return nil, &FormatError{Err: ErrInvalidConfig, What: "more than 256 configs"}
	}
	for i, c := range h.Configs {
		var ok1, ok2 bool
		names[i], ok1 = t.addString(c.Name)
		datas[i], ok2 = t.add(c.Data)
		if !ok1 || !ok2 {
			return nil, &FormatError{Err: ErrInvalidConfig, What: "config " + c.Name + " is larger than 65535 bytes"}
		}
	}
	devPtrs := make([]uint32, len(h.Devices))
	for i, d := range h.Devices {
		p, ok := t.addString(d.Name)
		if !ok {
			return nil, &FormatError{Err: ErrInvalidDevice, What: "device name longer than 65534 bytes"}
		}
		devPtrs[i] = p
	}
	headerSize := headerFixedSize + t.blockSize()
	if headerSize > maxHeaderSize {
		return nil, &FormatError{Err: ErrHeaderSize, What: "configs and names need more than 512000 bytes"}
	}
	b := make([]byte, headerSize)
	copy(b[hdrMagic:], headerMagic[:])
	be.PutUint32(b[hdrVersion:], 1)
	copy(b[hdrUUID:], h.UUID[:])
	be.PutUint64(b[hdrCtime:], uint64(h.Ctime.Unix()))
	be.PutUint32(b[hdrBlobOffset:], headerFixedSize)
	be.PutUint32(b[hdrBlobSize:], uint32(len(t.buf)))
	be.PutUint32(b[hdrSize:], uint32(headerSize))
	for i := range h.Configs {
		be.PutUint32(b[configNamesOffset+4*i:], names[i])
		be.PutUint32(b[configDataOffset+4*i:], datas[i])
	}
	for i, d := range h.Devices {
		slot := b[deviceInfoOffset+deviceInfoSize*d.ID:]
		be.PutUint32(slot[0:], devPtrs[i])
		be.PutUint64(slot[8:], uint64(d.Size))
	}
	copy(b[headerFixedSize:], t.buf)
	sum := md5.Sum(b)
	copy(b[hdrMD5:], sum[:])
	return b, nil
}

// headerSizeOf returns the header_size a header with these configs and
// device names would have, without building it.
func headerSizeOf(configs []Config, devices []Device) (int, bool) {
	t := newBlobTable()
	for _, c := range configs {
		if _, ok := t.addString(c.Name); !ok {
			return 0, false
		}
		if _, ok := t.add(c.Data); !ok {
			return 0, false
		}
	}
	for _, d := range devices {
		if _, ok := t.addString(d.Name); !ok {
			return 0, false
		}
	}
	return headerFixedSize + t.blockSize(), true
}

// blobIndex is the set of blobs reachable by Proxmox's walk: only these
// offsets are valid pointers.
type blobIndex struct {
	buf   []byte            // the blob buffer
	blobs map[uint32][2]int // relative offset -> [start, end) of the data in buf
}

func walkBlobs(buf []byte) blobIndex {
	idx := blobIndex{buf: buf, blobs: make(map[uint32][2]int)}
	for p := 1; p+2 <= len(buf); {
		n := int(buf[p]) | int(buf[p+1])<<8
		if p+n+2 <= len(buf) {
			idx.blobs[uint32(p)] = [2]int{p + 2, p + 2 + n}
		}
		p += n + 2
	}
	return idx
}

func (x blobIndex) data(ptr uint32) ([]byte, bool) {
	r, ok := x.blobs[ptr]
	if !ok {
		return nil, false
	}
	return x.buf[r[0]:r[1]], true
}

// str resolves a NUL-terminated string blob; C reads it up to the first NUL.
func (x blobIndex) str(ptr uint32) (string, bool) {
	b, ok := x.data(ptr)
	if !ok || len(b) == 0 || b[len(b)-1] != 0 {
		return "", false
	}
	s := string(b)
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	return s, true
}

// parseHeader decodes a complete header (header_size bytes) whose magic and
// size were already checked, in the order vma_reader_read_head checks it, so
// that the first reported problem is the one Proxmox reports.
func parseHeader(b []byte) (*Header, error) {
	var stored [16]byte
	copy(stored[:], b[hdrMD5:hdrMD5+16])
	clear(b[hdrMD5 : hdrMD5+16])
	sum := md5.Sum(b)
	copy(b[hdrMD5:], stored[:])
	if sum != stored {
		return nil, formatErr(hdrMD5, ErrHeaderChecksum, "stored %x, computed %x", stored, sum)
	}
	if v := be.Uint32(b[hdrVersion:]); v != 1 {
		return nil, formatErr(hdrVersion, ErrVersion, "version %d, want 1", v)
	}
	blobOff := int64(be.Uint32(b[hdrBlobOffset:]))
	blobSize := int64(be.Uint32(b[hdrBlobSize:]))
	if blobOff < headerFixedSize {
		return nil, formatErr(hdrBlobOffset, ErrHeaderSize, "blob buffer offset %d is inside the fixed header", blobOff)
	}
	if blobOff+blobSize > int64(len(b)) {
		return nil, formatErr(hdrBlobSize, ErrHeaderSize, "blob buffer %d+%d runs past header size %d", blobOff, blobSize, len(b))
	}
	blobs := walkBlobs(b[blobOff : blobOff+blobSize])
	// Where a name's bytes are in the archive: after its 2-byte length.
	nameOff := func(ptr uint32) int64 { return blobOff + int64(ptr) + 2 }

	h := &Header{Size: int64(len(b))}
	copy(h.UUID[:], b[hdrUUID:hdrUUID+16])
	h.Ctime = time.Unix(int64(be.Uint64(b[hdrCtime:])), 0)

	// Slot 255 is parsed by Proxmox but never listed, extracted or verified;
	// leaving it out makes any extent that uses it an unknown-device error.
	for id := 1; id <= maxDevices; id++ {
		slot := b[deviceInfoOffset+deviceInfoSize*id:]
		size := be.Uint64(slot[8:])
		ptr := be.Uint32(slot[0:])
		name, ok := blobs.str(ptr)
		if size == 0 || !ok {
			continue
		}
		if size > 1<<32*ClusterSize {
			return nil, formatErr(int64(deviceInfoOffset+deviceInfoSize*id+8), ErrInvalidDevice,
				"device %q size %d exceeds 2^32 clusters", name, size)
		}
		h.Devices = append(h.Devices, Device{ID: id, Name: name, Size: int64(size), nameOff: nameOff(ptr)})
	}
	for i := 0; i < maxConfigs; i++ {
		np := be.Uint32(b[configNamesOffset+4*i:])
		dp := be.Uint32(b[configDataOffset+4*i:])
		if np == 0 || dp == 0 {
			continue
		}
		name, ok1 := blobs.str(np)
		data, ok2 := blobs.data(dp)
		if !ok1 || !ok2 {
			return nil, formatErr(int64(configNamesOffset+4*i), ErrBlobPointer, "config slot %d points outside the blob table", i)
		}
		h.Configs = append(h.Configs, Config{Name: name, Data: append([]byte(nil), data...), nameOff: nameOff(np)})
	}
	return h, nil
}
