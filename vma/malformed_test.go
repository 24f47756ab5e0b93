package vma

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/google/uuid"
)

var testUUID = uuid.MustParse("00112233-4455-6677-8899-aabbccddeeff")

// archive assembles a header for devices of the given sizes and the given
// extents, each described by its slots and a block count (-1: the true one).
type craftedExtent struct {
	slots      []blockInfo
	blockCount int
	mutate     func(hdr []byte) // applied before the checksum
	badMD5     bool
}

func craftArchive(t *testing.T, sizes []int64, mutateHeader func([]byte), exts ...craftedExtent) []byte {
	t.Helper()
	h := &Header{UUID: testUUID, Ctime: time.Unix(1, 0), Configs: []Config{{Name: "qemu-server.conf", Data: []byte("x")}}}
	for i, s := range sizes {
		h.Devices = append(h.Devices, Device{ID: i + 1, Name: "drive-scsi" + string(rune('0'+i)), Size: s})
	}
	return craftFromHeader(t, h, mutateHeader, exts...)
}

// craftFromHeader is craftArchive for a header given in full, names and all;
// h.UUID must be testUUID.
func craftFromHeader(t *testing.T, h *Header, mutateHeader func([]byte), exts ...craftedExtent) []byte {
	t.Helper()
	hdr, err := marshalHeader(h)
	if err != nil {
		t.Fatal(err)
	}
	if mutateHeader != nil {
		mutateHeader(hdr)
		clear(hdr[hdrMD5 : hdrMD5+16])
		sum := md5.Sum(hdr)
		copy(hdr[hdrMD5:], sum[:])
	}
	out := bytes.NewBuffer(hdr)
	for _, e := range exts {
		eh := extentHeader{uuid: testUUID}
		copy(eh.info[:], e.slots)
		eh.blockCount = eh.maskBlocks()
		data := eh.blockCount
		if e.blockCount >= 0 {
			eh.blockCount = e.blockCount
		}
		b := make([]byte, extentHeaderSize+data*BlockSize)
		for i := extentHeaderSize; i < len(b); i++ {
			b[i] = 0xaa
		}
		eh.marshal(b)
		if e.mutate != nil {
			e.mutate(b)
			clear(b[extMD5 : extMD5+16])
			sum := md5.Sum(b[:extentHeaderSize])
			copy(b[extMD5:], sum[:])
		}
		if e.badMD5 {
			b[extMD5] ^= 1
		}
		out.Write(b)
	}
	return out.Bytes()
}

func ext(slots ...blockInfo) craftedExtent { return craftedExtent{slots: slots, blockCount: -1} }

func TestMalformedArchives(t *testing.T) {
	const c = ClusterSize
	full := uint16(0xffff)
	for _, tc := range []struct {
		name   string
		sizes  []int64
		header func([]byte)
		exts   []craftedExtent
		want   error
		offset int64
	}{
		{"valid", []int64{2 * c}, nil, []craftedExtent{ext(makeBlockInfo(full, 1, 0), makeBlockInfo(0, 1, 1))}, nil, 0},
		{"version 2", []int64{c}, func(b []byte) { be.PutUint32(b[hdrVersion:], 2) }, nil, ErrVersion, hdrVersion},
		{"header size 12288", []int64{c}, func(b []byte) { be.PutUint32(b[hdrSize:], headerFixedSize) }, nil, ErrHeaderSize, hdrSize},
		{"header size 3 GiB", []int64{c}, func(b []byte) { be.PutUint32(b[hdrSize:], 3<<30) }, nil, ErrHeaderSize, hdrSize},
		{"blob offset inside the fixed header", []int64{c}, func(b []byte) { be.PutUint32(b[hdrBlobOffset:], 100) }, nil, ErrHeaderSize, hdrBlobOffset},
		{"blob buffer past the header", []int64{c}, func(b []byte) { be.PutUint32(b[hdrBlobSize:], 1<<20) }, nil, ErrHeaderSize, hdrBlobSize},
		{"config pointer to nowhere", []int64{c}, func(b []byte) { be.PutUint32(b[configDataOffset:], 7) }, nil, ErrBlobPointer, configNamesOffset},
		{"unknown device", []int64{c}, nil, []craftedExtent{ext(makeBlockInfo(0, 1, 0), makeBlockInfo(0, 9, 0))}, ErrUnknownDevice, 0},
		{"duplicated cluster", []int64{2 * c}, nil, []craftedExtent{ext(makeBlockInfo(0, 1, 0), makeBlockInfo(0, 1, 1)), ext(makeBlockInfo(0, 1, 0))}, ErrDuplicateCluster, 0},
		{"missing cluster", []int64{2 * c}, nil, []craftedExtent{ext(makeBlockInfo(0, 1, 0))}, ErrMissingCluster, 0},
		{"cluster past the end", []int64{c}, nil, []craftedExtent{ext(makeBlockInfo(0, 1, 0), makeBlockInfo(0, 1, 1))}, ErrBeyondEnd, 0},
		{"block past the end", []int64{c + 8192}, nil, []craftedExtent{ext(makeBlockInfo(0, 1, 0), makeBlockInfo(0b100, 1, 1))}, ErrBeyondEnd, 0},
		{"block count too high", []int64{c}, nil, []craftedExtent{{slots: []blockInfo{makeBlockInfo(1, 1, 0)}, blockCount: 2}}, ErrBlockCount, 0},
		{"block count too low", []int64{c}, nil, []craftedExtent{{slots: []blockInfo{makeBlockInfo(3, 1, 0)}, blockCount: 1}}, ErrBlockCount, 0},
		{"extent checksum", []int64{c}, nil, []craftedExtent{{slots: []blockInfo{makeBlockInfo(0, 1, 0)}, blockCount: -1, badMD5: true}}, ErrExtentChecksum, 0},
		{"extent magic", []int64{c}, nil, []craftedExtent{{slots: []blockInfo{makeBlockInfo(0, 1, 0)}, blockCount: -1, mutate: func(b []byte) { b[3] = 'X' }}}, ErrExtentMagic, 0},
		{"extent reserved field", []int64{c}, nil, []craftedExtent{{slots: []blockInfo{makeBlockInfo(0, 1, 0)}, blockCount: -1, mutate: func(b []byte) { b[5] = 1 }}}, ErrExtentMagic, 0},
		{"extent uuid", []int64{c}, nil, []craftedExtent{{slots: []blockInfo{makeBlockInfo(0, 1, 0)}, blockCount: -1, mutate: func(b []byte) { b[extUUID] ^= 1 }}}, ErrExtentUUID, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := craftArchive(t, tc.sizes, tc.header, tc.exts...)
			r, err := NewReader(bytes.NewReader(b))
			if err == nil {
				_, err = Verify(context.Background(), r)
			}
			if tc.want == nil {
				if err != nil {
					t.Fatalf("valid archive: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("%v is not a FormatError", err)
			}
			if tc.offset != 0 && fe.Offset != tc.offset {
				t.Errorf("offset %d, want %d", fe.Offset, tc.offset)
			}
		})
	}
}

func TestLenientEnd(t *testing.T) {
	b := craftArchive(t, []int64{ClusterSize + 8192}, nil, ext(makeBlockInfo(0, 1, 0), makeBlockInfo(0b111, 1, 1)))
	r, err := NewReader(bytes.NewReader(b), WithLenientEnd())
	if err != nil {
		t.Fatal(err)
	}
	tgt := &sliceTarget{b: make([]byte, ClusterSize+8192)}
	if err := Extract(context.Background(), r, map[int]io.WriterAt{1: tgt}); err != nil {
		t.Fatal(err)
	}
	if len(tgt.b) != ClusterSize+8192 || tgt.b[ClusterSize] != 0xaa || tgt.b[len(tgt.b)-1] != 0xaa {
		t.Errorf("lenient extract wrote %d bytes", len(tgt.b))
	}
}

func TestBlobTableGrowth(t *testing.T) {
	// The examples of the format document, §2.2.
	for _, tc := range []struct{ conf, blobSize, headerSize int }{{417, 453, 12800}, {600, 636, 13824}, {1000, 1036, 13824}} {
		h := &Header{Configs: []Config{{Name: "qemu-server.conf", Data: make([]byte, tc.conf)}}, Devices: []Device{{ID: 1, Name: "drive-scsi0", Size: 512}}}
		b, err := marshalHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if got := int(be.Uint32(b[hdrBlobSize:])); got != tc.blobSize || len(b) != tc.headerSize {
			t.Errorf("config of %d bytes: blob size %d, header %d; want %d, %d", tc.conf, got, len(b), tc.blobSize, tc.headerSize)
		}
	}
	// C under-allocates when (len+2)%512 == 0; this writer must not.
	h := &Header{Configs: []Config{{Name: string(bytes.Repeat([]byte{'n'}, 509)), Data: []byte("x")}}}
	b, err := marshalHeader(h)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseHeader(b)
	if err != nil || got.Configs[0].Name != h.Configs[0].Name || string(got.Configs[0].Data) != "x" {
		t.Fatalf("509-byte name: %v %+v", err, got)
	}
}

type sliceTarget struct{ b []byte }

func (s *sliceTarget) WriteAt(p []byte, off int64) (int, error) { return copy(s.b[off:], p), nil }
