package main

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// vmaSpec describes an archive to assemble byte by byte, following the
// format document, so a test can make what no writer makes: any names, any
// extent slots.
type vmaSpec struct {
	configs []string // names; each holds "x\n"
	devices []vmaDev // dev_ids 1, 2, ... in order
	// extents lists each extent's slots; nil means every cluster of every
	// device once, in order, with its first block stored.
	extents [][]vmaSlot
}

type vmaDev struct {
	name string
	size int64
}

type vmaSlot struct {
	dev     uint8
	cluster uint32
	mask    uint16
}

// allClusters is what vmaSpec.extents defaults to.
func (s vmaSpec) allClusters() [][]vmaSlot {
	var exts [][]vmaSlot
	var cur []vmaSlot
	for i, d := range s.devices {
		for c := int64(0); c < (d.size+65535)/65536; c++ {
			if len(cur) == 58 {
				exts = append(exts, cur)
				cur = nil
			}
			cur = append(cur, vmaSlot{uint8(i + 1), uint32(c), 1})
		}
	}
	return append(exts, cur)
}

func (s vmaSpec) bytes() []byte {
	be := binary.BigEndian
	uuid := []byte("0123456789abcdef")
	blobs := []byte{0}
	blob := func(data []byte) uint32 {
		p := len(blobs)
		blobs = append(blobs, byte(len(data)), byte(len(data)>>8))
		blobs = append(blobs, data...)
		return uint32(p)
	}
	hdr := make([]byte, 12288)
	copy(hdr, "VMA\x00")
	be.PutUint32(hdr[4:], 1)
	copy(hdr[8:], uuid)
	be.PutUint64(hdr[24:], 1700000000)
	for i, c := range s.configs {
		be.PutUint32(hdr[2044+4*i:], blob(append([]byte(c), 0)))
		be.PutUint32(hdr[3068+4*i:], blob([]byte("x\n")))
	}
	for i, d := range s.devices {
		slot := hdr[4096+32*(i+1):]
		be.PutUint32(slot, blob(append([]byte(d.name), 0)))
		be.PutUint64(slot[8:], uint64(d.size))
	}
	be.PutUint32(hdr[48:], 12288)
	be.PutUint32(hdr[52:], uint32(len(blobs)))
	hdr = append(hdr, blobs...)
	hdr = append(hdr, make([]byte, (512-len(hdr)%512)%512)...)
	be.PutUint32(hdr[56:], uint32(len(hdr)))
	sum := md5.Sum(hdr)
	copy(hdr[32:], sum[:])

	out := bytes.NewBuffer(hdr)
	exts := s.extents
	if exts == nil {
		exts = s.allClusters()
	}
	for _, slots := range exts {
		e := make([]byte, 512)
		copy(e, "VMAE")
		copy(e[8:], uuid)
		blocks := 0
		for i, sl := range slots {
			be.PutUint64(e[40+8*i:], uint64(sl.mask)<<48|uint64(sl.dev)<<32|uint64(sl.cluster))
			if sl.dev != 0 {
				blocks += bits.OnesCount16(sl.mask)
			}
		}
		be.PutUint16(e[6:], uint16(blocks))
		sum := md5.Sum(e)
		copy(e[24:], sum[:])
		out.Write(e)
		out.Write(bytes.Repeat([]byte{0x5a}, blocks*4096))
	}
	return out.Bytes()
}

// nameOffset is where name (NUL-terminated) is in the archive's header:
// its first occurrence, or its last if last is set.
func nameOffset(t *testing.T, archive []byte, name string, last bool) int {
	t.Helper()
	hdr := archive[:binary.BigEndian.Uint32(archive[56:])]
	i := bytes.Index(hdr, []byte(name+"\x00"))
	if last {
		i = bytes.LastIndex(hdr, []byte(name+"\x00"))
	}
	if i < 12288 {
		t.Fatalf("%q is not in the blob table", name)
	}
	return i
}

type agreeCase struct {
	name   string
	spec   vmaSpec
	reason string // "" for an archive both accept
	at     string // the name whose offset verify must give, if any
	last   bool   // its last occurrence
}

func agreeCases() []agreeCase {
	disk := vmaDev{"drive-scsi0", 128 << 10}
	conf := []string{"qemu-server.conf"}
	long := strings.Repeat("n", 256)
	absolute := "/tmp/vmatool-agree-test-" + strings.Repeat("a", 8)
	return []agreeCase{
		{name: "valid", spec: vmaSpec{configs: []string{"qemu-server.conf", "qemu-server.fw"}, devices: []vmaDev{disk, {"drive-efidisk0", 540672}}}},
		{name: "valid with VM state", spec: vmaSpec{configs: conf, devices: []vmaDev{disk, {"vmstate", 192 << 10}}}},
		{name: "valid longest names", spec: vmaSpec{configs: []string{strings.Repeat("c", 255)}, devices: []vmaDev{{strings.Repeat("d", 242), 4096}}}},
		{name: "diskless", spec: vmaSpec{configs: conf, extents: [][]vmaSlot{nil}}},
		{name: "config ../evil", spec: vmaSpec{configs: []string{"../evil"}, devices: []vmaDev{disk}}, reason: "unsafe name", at: "../evil"},
		{name: "config absolute", spec: vmaSpec{configs: []string{absolute}, devices: []vmaDev{disk}}, reason: "unsafe name", at: absolute},
		{name: "config empty", spec: vmaSpec{configs: []string{""}, devices: []vmaDev{disk}}, reason: "unsafe name"},
		{name: "config ..", spec: vmaSpec{configs: []string{".."}, devices: []vmaDev{disk}}, reason: "unsafe name", at: ".."},
		{name: "config over 255 bytes", spec: vmaSpec{configs: []string{long}, devices: []vmaDev{disk}}, reason: "unsafe name", at: long},
		{name: "device a/../../x", spec: vmaSpec{configs: conf, devices: []vmaDev{{"a/../../x", 4096}}}, reason: "unsafe name", at: "a/../../x"},
		{name: "device empty", spec: vmaSpec{configs: conf, devices: []vmaDev{{"", 4096}}}, reason: "unsafe name"},
		{name: "device ..", spec: vmaSpec{configs: conf, devices: []vmaDev{{"..", 4096}}}, reason: "unsafe name", at: ".."},
		{name: "device over 255 bytes", spec: vmaSpec{configs: conf, devices: []vmaDev{{long, 4096}}}, reason: "unsafe name", at: long},
		{name: "device whose file name is over 255 bytes", spec: vmaSpec{configs: conf, devices: []vmaDev{{strings.Repeat("d", 243), 4096}}}, reason: "unsafe name", at: strings.Repeat("d", 243)},
		{name: "config twice", spec: vmaSpec{configs: []string{"qemu-server.conf", "qemu-server.conf"}, devices: []vmaDev{disk}}, reason: "duplicate name", at: "qemu-server.conf", last: true},
		{name: "config named like a disk", spec: vmaSpec{configs: []string{"disk-drive-scsi0.raw"}, devices: []vmaDev{disk}}, reason: "duplicate name", at: "disk-drive-scsi0.raw"},
		{name: "config named like a temporary disk", spec: vmaSpec{configs: []string{"tmp-disk-drive-scsi0.raw"}, devices: []vmaDev{disk}}, reason: "duplicate name", at: "tmp-disk-drive-scsi0.raw"},
		{name: "config named like the VM state", spec: vmaSpec{configs: []string{"vmstate.bin"}, devices: []vmaDev{{"vmstate", 4096}}}, reason: "duplicate name", at: "vmstate.bin"},
		{name: "device twice", spec: vmaSpec{configs: conf, devices: []vmaDev{disk, disk}}, reason: "duplicate name", at: "drive-scsi0", last: true},
		{name: "VM state with more clusters than its size", spec: vmaSpec{configs: conf, devices: []vmaDev{{"vmstate", 64 << 10}},
			extents: [][]vmaSlot{{{1, 0, 1}, {1, 1, 0}}}}, reason: "block past the end"},
		{name: "unused slot with data", spec: vmaSpec{configs: conf, devices: []vmaDev{disk},
			extents: [][]vmaSlot{{{1, 0, 1}, {1, 1, 1}, {0, 0, 0xffff}}}}, reason: "unused extent slot"},
		{name: "missing cluster", spec: vmaSpec{configs: conf, devices: []vmaDev{disk},
			extents: [][]vmaSlot{{{1, 0, 1}}}}, reason: "missing cluster"},
		{name: "disk cluster past its end", spec: vmaSpec{configs: conf, devices: []vmaDev{disk},
			extents: [][]vmaSlot{{{1, 0, 1}, {1, 1, 1}, {1, 2, 0}}}}, reason: "block past the end"},
	}
}

// TestVerifyAgreesWithUnpack: for every archive, verify exits 0 if and only
// if unpack and extract succeed; when it exits 1 it says why in one line
// naming the archive, the offset and the problem, and unpack and extract
// leave nothing behind.
func TestVerifyAgreesWithUnpack(t *testing.T) {
	for _, tc := range agreeCases() {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.spec.bytes()
			archive := writeFile(t, filepath.Join(t.TempDir(), "a.vma"), b)
			runInProcess(t, nil, nil, "list", archive).mustSucceed(t) // the header is readable, names and all

			verify := vmatool(t, nil, nil, "verify", archive)
			parent := t.TempDir()
			unpack := vmatool(t, nil, nil, "unpack", "-q", archive, filepath.Join(parent, "u"))
			extract := vmatool(t, nil, nil, "extract", archive, filepath.Join(parent, "x"))
			for _, r := range []result{verify, unpack, extract} {
				r.assertRSS(t)
			}
			if (verify.code == 0) != (unpack.code == 0) || (verify.code == 0) != (extract.code == 0) {
				t.Fatalf("verify exit %d (%s), unpack exit %d (%s), extract exit %d (%s): they must agree",
					verify.code, verify.stderr, unpack.code, unpack.stderr, extract.code, extract.stderr)
			}
			if tc.reason == "" {
				if verify.code != 0 {
					t.Fatalf("verify refused a valid archive: %s", verify.stderr)
				}
				return
			}
			if verify.code != 1 || unpack.code != 1 || extract.code != 1 {
				t.Errorf("exits %d, %d, %d; want 1", verify.code, unpack.code, extract.code)
			}
			line := strings.TrimSuffix(verify.stderr, "\n")
			if strings.Contains(line, "\n") || !strings.Contains(line, archive) || !strings.Contains(line, tc.reason) || !strings.Contains(line, "offset") {
				t.Errorf("verify said %q; want one line naming %s, the offset and %q", verify.stderr, archive, tc.reason)
			}
			if tc.at != "" {
				off := nameOffset(t, b, tc.at, tc.last)
				if !strings.Contains(line, fmt.Sprintf("offset %d ", off)) {
					t.Errorf("verify said %q; want the offset of the name, %d", line, off)
				}
			}
			for _, r := range []result{unpack, extract} {
				if !strings.Contains(r.stderr, tc.reason) {
					t.Errorf("unpack/extract said %q; want %q", r.stderr, tc.reason)
				}
			}
			assertEmptyDir(t, parent)
			if _, err := os.Lstat("/tmp/vmatool-agree-test-aaaaaaaa"); err == nil {
				t.Error("an absolute config name was written")
			}

			var doc struct {
				OK     bool
				Kind   string
				Offset *int64
			}
			r := runInProcess(t, nil, nil, "verify", "--json", archive)
			if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != 1 || doc.OK || doc.Offset == nil || !strings.Contains(line, doc.Kind) {
				t.Errorf("verify --json: exit %d, %+v, %v (%s)", r.code, doc, err, r.stdout)
			}
		})
	}
}

// An output that cannot be created is reported with the archive entry it
// was for and the offset of that entry's name.
func TestOutputErrorNamesTheEntry(t *testing.T) {
	b := vmaSpec{configs: []string{"qemu-server.conf"}, devices: []vmaDev{{"drive-scsi0", 64 << 10}}}.bytes()
	archive := writeFile(t, filepath.Join(t.TempDir(), "a.vma"), b)
	dir := t.TempDir()
	for _, tc := range []struct{ existing, entry, name string }{
		{"qemu-server.conf", `config "qemu-server.conf"`, "qemu-server.conf"},
		{"disk-drive-scsi0.raw", `device "drive-scsi0"`, "drive-scsi0"},
	} {
		writeFile(t, filepath.Join(dir, tc.existing), []byte("mine"))
		r := runInProcess(t, nil, nil, "unpack", "-q", archive, dir)
		want := fmt.Sprintf("%s: %s, named at offset %d: %s", archive, tc.entry, nameOffset(t, b, tc.name, false), filepath.Join(dir, tc.existing))
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("exit %d, %q; want 1 and %q", r.code, r.stderr, want)
		}
		os.Remove(filepath.Join(dir, tc.existing))
	}
}
