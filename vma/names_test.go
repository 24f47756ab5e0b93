package vma

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"
)

// namedArchive is a complete, otherwise valid archive with these configs
// and devices (dev_ids 1.. in order; one mask-0 cluster each, so sizes
// must be at most one cluster).
func namedArchive(t *testing.T, configs []string, devices []string) []byte {
	t.Helper()
	h := &Header{UUID: testUUID, Ctime: time.Unix(1, 0)}
	for _, c := range configs {
		h.Configs = append(h.Configs, Config{Name: c, Data: []byte("x")})
	}
	var slots []blockInfo
	for i, d := range devices {
		h.Devices = append(h.Devices, Device{ID: i + 1, Name: d, Size: 4096})
		slots = append(slots, makeBlockInfo(0, uint8(i+1), 0))
	}
	return craftFromHeader(t, h, nil, ext(slots...))
}

func TestCheckNames(t *testing.T) {
	long := strings.Repeat("n", 256)
	for _, tc := range []struct {
		name             string
		configs, devices []string
		want             error
		at               string // the name whose offset the error must give
		last             bool   // its last occurrence in the header
		text             string
	}{
		{"plain", []string{"qemu-server.conf", "qemu-server.fw"}, []string{"drive-scsi0", "vmstate"}, nil, "", false, ""},
		{"255-byte config name", []string{strings.Repeat("c", 255)}, []string{"drive-scsi0"}, nil, "", false, ""},
		{"242-byte device name", []string{"qemu-server.conf"}, []string{strings.Repeat("d", 242)}, nil, "", false, ""},
		{"config ../evil", []string{"../evil"}, nil, ErrUnsafeName, "../evil", false, "path separator"},
		{"config absolute", []string{"/etc/passwd"}, nil, ErrUnsafeName, "/etc/passwd", false, "absolute"},
		{"config ..", []string{"qemu-server.conf", ".."}, nil, ErrUnsafeName, "..", false, "names a directory"},
		{"config .", []string{"."}, nil, ErrUnsafeName, ".", false, "names a directory"},
		{"config backslash", []string{`a\b`}, nil, ErrUnsafeName, `a\b`, false, "path separator"},
		{"config over 255 bytes", []string{long}, nil, ErrUnsafeName, long, false, "256 bytes long"},
		{"device with a slash", nil, []string{"a/../../x"}, ErrUnsafeName, "a/../../x", false, "path separator"},
		{"device ..", nil, []string{".."}, ErrUnsafeName, "..", false, "names a directory"},
		{"device over 255 bytes", nil, []string{long}, ErrUnsafeName, long, false, "256 bytes long"},
		{"device whose temporary file is too long", nil, []string{strings.Repeat("d", 243)}, ErrUnsafeName, strings.Repeat("d", 243), false, "256 bytes long"},
		{"config twice", []string{"qemu-server.conf", "qemu-server.conf"}, nil, ErrDuplicateName, "qemu-server.conf", true, "appears twice"},
		{"config named like a disk", []string{"disk-drive-scsi0.raw"}, []string{"drive-scsi0"}, ErrDuplicateName, "disk-drive-scsi0.raw", false, "would both be written"},
		{"config named like a temporary disk", []string{"tmp-disk-drive-scsi0.raw"}, []string{"drive-scsi0"}, ErrDuplicateName, "tmp-disk-drive-scsi0.raw", false, "would both be written"},
		{"config named like the VM state", []string{"vmstate.bin"}, []string{"vmstate"}, ErrDuplicateName, "vmstate.bin", false, "would both be written"},
		{"device twice", nil, []string{"drive-scsi0", "drive-scsi0"}, ErrDuplicateName, "drive-scsi0", true, "would both be written"},
		{"two VM states", nil, []string{"vmstate", "vmstate"}, ErrDuplicateName, "vmstate", true, "vmstate.bin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := namedArchive(t, tc.configs, tc.devices)
			r, err := NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("the header must be readable (list shows it): %v", err)
			}
			checkErr := r.Header().CheckNames()
			_, verifyErr := Verify(context.Background(), r)
			r2, _ := NewReader(bytes.NewReader(b))
			targets := map[int]io.WriterAt{}
			for _, d := range r2.Header().Devices {
				targets[d.ID] = &sliceTarget{b: make([]byte, d.Size)}
			}
			extractErr := Extract(context.Background(), r2, targets)
			if tc.want == nil {
				if checkErr != nil || verifyErr != nil || extractErr != nil {
					t.Fatalf("valid names refused: %v / %v / %v", checkErr, verifyErr, extractErr)
				}
				return
			}
			for _, err := range []error{checkErr, verifyErr, extractErr} {
				if !errors.Is(err, tc.want) || !strings.Contains(fmtErr(err), tc.text) {
					t.Fatalf("got %v, want %v mentioning %q", err, tc.want, tc.text)
				}
			}
			var fe *FormatError
			if !errors.As(verifyErr, &fe) {
				t.Fatalf("%v is not a FormatError", verifyErr)
			}
			hdr := b[:be.Uint32(b[hdrSize:])]
			want := bytes.Index(hdr, []byte(tc.at+"\x00"))
			if tc.last {
				want = bytes.LastIndex(hdr, []byte(tc.at+"\x00"))
			}
			if want < headerFixedSize || fe.Offset != int64(want) {
				t.Errorf("offset %d, want %d, where the name %.20q is", fe.Offset, want, tc.at)
			}
			if verifyErr.Error() != extractErr.Error() {
				t.Errorf("Verify and Extract disagree: %v / %v", verifyErr, extractErr)
			}
		})
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestNameOffsets(t *testing.T) {
	b := namedArchive(t, []string{"qemu-server.conf", "qemu-server.fw"}, []string{"drive-scsi0", "drive-efidisk0"})
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	h := r.Header()
	for _, c := range h.Configs {
		if off := c.NameOffset(); string(b[off:off+int64(len(c.Name))+1]) != c.Name+"\x00" {
			t.Errorf("config %s: NameOffset %d holds %q", c.Name, off, b[off:off+int64(len(c.Name))])
		}
	}
	for _, d := range h.Devices {
		if off := d.NameOffset(); string(b[off:off+int64(len(d.Name))+1]) != d.Name+"\x00" {
			t.Errorf("device %s: NameOffset %d holds %q", d.Name, off, b[off:off+int64(len(d.Name))])
		}
	}
	if got := (Device{Name: "drive-scsi0"}).FileName(); got != "disk-drive-scsi0.raw" {
		t.Errorf("FileName %q", got)
	}
	if got := (Device{Name: "drive-scsi0"}).TempFileName(); got != "tmp-disk-drive-scsi0.raw" {
		t.Errorf("TempFileName %q", got)
	}
	if d := (Device{Name: "vmstate"}); d.FileName() != "vmstate.bin" || d.TempFileName() != "" {
		t.Errorf("vmstate: %q, %q", d.FileName(), d.TempFileName())
	}
}

// The Writer applies the same rules, so it never makes an archive that
// Verify refuses.
func TestWriterRefusesWhatVerifyWould(t *testing.T) {
	newW := func() *Writer {
		w, err := NewWriter(io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	if err := newW().AddConfig(strings.Repeat("c", 256), nil); !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, ErrUnsafeName) {
		t.Errorf("256-byte config name: %v", err)
	}
	if err := newW().AddConfig("/", nil); !errors.Is(err, ErrUnsafeName) {
		t.Errorf("config /: %v", err)
	}
	if err := newW().AddConfig(strings.Repeat("c", 255), nil); err != nil {
		t.Errorf("255-byte config name: %v", err)
	}
	w := newW()
	if _, err := w.AddDevice("drive-scsi0", 512); err != nil {
		t.Fatal(err)
	}
	if err := w.AddConfig("/some/dir/disk-drive-scsi0.raw", nil); !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, ErrDuplicateName) {
		t.Errorf("config named like a disk: %v", err)
	}
	if err := w.AddConfig("qemu-server.conf", nil); err != nil {
		t.Fatal(err)
	}
	if err := w.AddConfig("qemu-server.conf", nil); !errors.Is(err, ErrDuplicateName) {
		t.Errorf("config twice: %v", err)
	}
	w = newW()
	if err := w.AddConfig("tmp-disk-drive-scsi1.raw", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddDevice("drive-scsi1", 512); !errors.Is(err, ErrInvalidDevice) || !errors.Is(err, ErrDuplicateName) {
		t.Errorf("device whose temporary file is a config: %v", err)
	}
	if _, err := newW().AddDevice(strings.Repeat("d", 243), 512); !errors.Is(err, ErrInvalidDevice) || !errors.Is(err, ErrUnsafeName) {
		t.Errorf("243-byte device name: %v", err)
	}
	if _, err := newW().AddDevice(strings.Repeat("d", 242), 512); err != nil {
		t.Errorf("242-byte device name: %v", err)
	}
}

func TestReaderRefusesHiddenData(t *testing.T) {
	const c = ClusterSize
	vmstate := func(size int64) *Header {
		return &Header{UUID: testUUID, Ctime: time.Unix(1, 0), Devices: []Device{{ID: 1, Name: "vmstate", Size: size}}}
	}
	for _, tc := range []struct {
		name string
		h    *Header
		exts []craftedExtent
		want error
		slot int // the slot the error must point at
	}{
		{"vmstate within its size", vmstate(2 * c), []craftedExtent{ext(makeBlockInfo(0xffff, 1, 0), makeBlockInfo(1, 1, 1))}, nil, 0},
		{"vmstate with more clusters than its size", vmstate(2 * c), []craftedExtent{ext(makeBlockInfo(0xffff, 1, 0), makeBlockInfo(1, 1, 1), makeBlockInfo(1, 1, 2))}, ErrBeyondEnd, 2},
		{"vmstate with an extra zero cluster", vmstate(c), []craftedExtent{ext(makeBlockInfo(1, 1, 0), makeBlockInfo(0, 1, 1))}, ErrBeyondEnd, 1},
		{"vmstate with a block past its end", vmstate(c + 4096), []craftedExtent{ext(makeBlockInfo(0, 1, 0), makeBlockInfo(0b11, 1, 1))}, ErrBeyondEnd, 1},
		{"vmstate out of order", vmstate(2 * c), []craftedExtent{ext(makeBlockInfo(0, 1, 1), makeBlockInfo(0, 1, 0))}, ErrVMStateOrder, 0},
		{"unused slot with data", vmstate(c), []craftedExtent{ext(makeBlockInfo(0, 1, 0), 0, makeBlockInfo(0xffff, 0, 0))}, ErrUnusedSlot, 2},
		{"unused slot with a cluster number only", vmstate(c), []craftedExtent{ext(makeBlockInfo(0, 1, 0), makeBlockInfo(0, 0, 7))}, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := craftFromHeader(t, tc.h, nil, tc.exts...)
			errs := map[string]error{}
			r, err := NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			_, errs["Verify"] = Verify(context.Background(), r)
			r, _ = NewReader(bytes.NewReader(b))
			errs["Extract"] = Extract(context.Background(), r, map[int]io.WriterAt{1: &sliceTarget{b: make([]byte, tc.h.Devices[0].Size)}})
			r, _ = NewReader(bytes.NewReader(b))
			for {
				if _, err = r.Next(); err != nil {
					break
				}
			}
			if err == io.EOF {
				err = nil
			}
			errs["Next"] = err
			for who, err := range errs {
				if tc.want == nil {
					if err != nil {
						t.Errorf("%s: %v", who, err)
					}
					continue
				}
				var fe *FormatError
				if !errors.Is(err, tc.want) || !errors.As(err, &fe) {
					t.Errorf("%s: got %v, want %v", who, err, tc.want)
					continue
				}
				if want := slotOffset(b, tc.slot); fe.Offset != want {
					t.Errorf("%s: offset %d, want %d (slot %d)", who, fe.Offset, want, tc.slot)
				}
			}
		})
	}
}

// slotOffset is the archive offset of slot i of the first extent.
func slotOffset(b []byte, i int) int64 {
	return int64(be.Uint32(b[hdrSize:])) + extBlockInfo + 8*int64(i)
}

// A stream that claims a large header but ends early must cost what it
// holds, not what it claims.
func TestShortHeaderCostsWhatItHolds(t *testing.T) {
	b := namedArchive(t, []string{"qemu-server.conf"}, nil)
	be.PutUint32(b[hdrSize:], maxReadHeaderSize)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		if _, err := NewReader(bytes.NewReader(b[:headerFixedSize+100])); !errors.Is(err, ErrShortHeader) {
			t.Fatalf("got %v, want %v", err, ErrShortHeader)
		}
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 10*(256<<10) {
		t.Errorf("10 short headers claiming %d bytes allocated %d bytes", maxReadHeaderSize, n)
	}
}

// An archive with no configs and no devices: C's writer makes one that no
// reader accepts (header_size 12288); this one must read back and verify.
func TestEmptyArchiveReadsBack(t *testing.T) {
	var out bytes.Buffer
	w, err := NewWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(&out)
	if err != nil {
		t.Fatalf("empty archive unreadable: %v", err)
	}
	if _, err := Verify(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if h := r.Header(); h.Size != headerFixedSize+512 || len(h.Configs)+len(h.Devices) != 0 {
		t.Errorf("header of %d bytes, %d configs, %d devices", h.Size, len(h.Configs), len(h.Devices))
	}
}
