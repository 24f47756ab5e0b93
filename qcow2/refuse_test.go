package qcow2_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/vmatool/vmatool/qcow2"
)

var be = binary.BigEndian

// Header offsets the crafted images patch (see qcow2.rst).
const (
	hVersion      = 4
	hBackingOff   = 8
	hBackingSize  = 16
	hClusterBits  = 20
	hSize         = 24
	hCrypt        = 32
	hL1Size       = 36
	hL1Off        = 40
	hRefClusters  = 56
	hIncompat     = 72
	hAutoclear    = 88
	hRefOrder     = 96
	hHeaderLength = 100
	hCompression  = 104
)

// l2Entry returns the file offset of L2 entry i of the table that L1
// entry 0 points at (standard or extended entries of entrySize bytes).
func l2Entry(b []byte, i, entrySize int) int {
	l1 := be.Uint64(b[hL1Off:])
	l2 := be.Uint64(b[l1:]) & 0x00fffffffffffe00
	return int(l2) + i*entrySize
}

// firstEntry returns the file offset of the first L2 entry (from L1 entry
// 0's table) for which ok is true.
func firstEntry(t testing.TB, b []byte, entrySize int, ok func(uint64) bool) int {
	t.Helper()
	cluster := 1 << be.Uint32(b[hClusterBits:])
	for i := 0; i < cluster/entrySize; i++ {
		if off := l2Entry(b, i, entrySize); ok(be.Uint64(b[off:])) {
			return off
		}
	}
	t.Fatal("no such L2 entry")
	return 0
}

// extension returns the offset of the data of the first header extension
// of type typ in a version 3 image.
func extension(t testing.TB, b []byte, typ uint32) int {
	t.Helper()
	for off := int(be.Uint32(b[hHeaderLength:])); off+8 <= len(b); {
		ty, n := be.Uint32(b[off:]), int(be.Uint32(b[off+4:]))
		if ty == typ {
			return off + 8
		}
		if ty == 0 {
			break
		}
		off += 8 + (n+7)&^7
	}
	t.Fatalf("no header extension %#x", typ)
	return 0
}

func put32(off int, v uint32) func(t testing.TB, b []byte) []byte {
	return func(t testing.TB, b []byte) []byte { be.PutUint32(b[off:], v); return b }
}

func put64(off int, v uint64) func(t testing.TB, b []byte) []byte {
	return func(t testing.TB, b []byte) []byte { be.PutUint64(b[off:], v); return b }
}

func or64(off int, v uint64) func(t testing.TB, b []byte) []byte {
	return func(t testing.TB, b []byte) []byte { be.PutUint64(b[off:], be.Uint64(b[off:])|v); return b }
}

func patches(ps ...func(testing.TB, []byte) []byte) func(testing.TB, []byte) []byte {
	return func(t testing.TB, b []byte) []byte {
		for _, p := range ps {
			b = p(t, b)
		}
		return b
	}
}

// TestRefuse crafts broken images from the fixtures and checks that each
// is refused with the right kind of error, at Open or at the first read
// that meets the problem.
func TestRefuse(t *testing.T) {
	tests := []struct {
		name    string
		image   string
		patch   func(testing.TB, []byte) []byte
		opts    []qcow2.Option
		atRead  bool // the problem shows when reading, not at Open
		want    error
		message string // a part of the error text
	}{
		{name: "empty file", image: "v3-64k.qcow2", patch: func(_ testing.TB, b []byte) []byte { return nil }, want: qcow2.ErrNotQcow2},
		{name: "bad magic", image: "v3-64k.qcow2", patch: put32(0, 0x7f454c46), want: qcow2.ErrNotQcow2},
		{name: "short header", image: "v3-64k.qcow2", patch: func(_ testing.TB, b []byte) []byte { return b[:60] }, want: qcow2.ErrTruncated},
		{name: "short v3 header", image: "v3-64k.qcow2", patch: func(_ testing.TB, b []byte) []byte { return b[:90] }, want: qcow2.ErrTruncated},
		{name: "version 1", image: "v3-64k.qcow2", patch: put32(hVersion, 1), want: qcow2.ErrUnsupported, message: "version 1"},
		{name: "version 4", image: "v3-64k.qcow2", patch: put32(hVersion, 4), want: qcow2.ErrUnsupported},
		{name: "cluster bits 8", image: "v3-64k.qcow2", patch: put32(hClusterBits, 8), want: qcow2.ErrUnsupported, message: "cluster_bits 8"},
		{name: "cluster bits 22", image: "v3-64k.qcow2", patch: put32(hClusterBits, 22), want: qcow2.ErrUnsupported},
		{name: "AES", image: "v3-64k.qcow2", patch: put32(hCrypt, 1), want: qcow2.ErrEncrypted, message: "AES"},
		{name: "LUKS", image: "v2-4k.qcow2", patch: put32(hCrypt, 2), want: qcow2.ErrEncrypted, message: "LUKS"},
		{name: "unknown crypt method", image: "v3-64k.qcow2", patch: put32(hCrypt, 9), want: qcow2.ErrEncrypted},
		{name: "unknown incompatible bit", image: "v3-64k.qcow2", patch: or64(hIncompat, 1<<40), want: qcow2.ErrUnsupported, message: "bit 40"},
		{name: "named unknown incompatible bit", image: "v3-64k.qcow2", patch: func(t testing.TB, b []byte) []byte {
			// Rename the feature table's first entry to a bit of the
			// future and set that bit.
			e := extension(t, b, 0x6803f857)
			b[e], b[e+1] = 0, 7
			copy(b[e+2:e+48], "frobnicate\x00")
			return or64(hIncompat, 1<<7)(t, b)
		}, want: qcow2.ErrUnsupported, message: `bit 7 ("frobnicate")`},
		{name: "corrupt bit", image: "v3-64k.qcow2", patch: or64(hIncompat, 2), want: qcow2.ErrCorrupt, message: "marked corrupt"},
		{name: "header length 100", image: "v3-64k.qcow2", patch: put32(hHeaderLength, 100), want: qcow2.ErrCorrupt},
		{name: "header length 108", image: "v3-64k.qcow2", patch: put32(hHeaderLength, 108), want: qcow2.ErrCorrupt},
		{name: "header length past cluster", image: "zstd-4k.qcow2", patch: put32(hHeaderLength, 8192), want: qcow2.ErrCorrupt},
		{name: "compression type 2", image: "zstd-64k.qcow2", patch: func(_ testing.TB, b []byte) []byte { b[hCompression] = 2; return b }, want: qcow2.ErrUnsupported},
		{name: "zstd without its bit", image: "zstd-64k.qcow2", patch: put64(hIncompat, 0), want: qcow2.ErrCorrupt},
		{name: "compression bit with zlib", image: "v3-64k.qcow2", patch: or64(hIncompat, 8), want: qcow2.ErrCorrupt},
		{name: "huge L1", image: "v3-64k.qcow2", patch: put32(hL1Size, 0xffffffff), want: qcow2.ErrCorrupt, message: "larger than 32 MiB"},
		{name: "L1 too small", image: "v3-64k.qcow2", patch: put32(hL1Size, 0), want: qcow2.ErrCorrupt, message: "too small"},
		{name: "L1 unaligned", image: "v3-64k.qcow2", patch: func(t testing.TB, b []byte) []byte {
			return put64(hL1Off, be.Uint64(b[hL1Off:])+8)(t, b)
		}, want: qcow2.ErrCorrupt},
		{name: "L1 past end of file", image: "v3-64k.qcow2", patch: put64(hL1Off, 1<<40), want: qcow2.ErrTruncated},
		{name: "L1 offset overflows", image: "v3-64k.qcow2", patch: put64(hL1Off, 0x7fffffffffff0000), want: qcow2.ErrCorrupt},
		{name: "size too large", image: "v3-64k.qcow2", patch: put64(hSize, 1<<63), want: qcow2.ErrCorrupt},
		{name: "size past L1", image: "v3-64k.qcow2", patch: put64(hSize, 1<<50), want: qcow2.ErrCorrupt},
		{name: "refcount order 7", image: "v3-64k.qcow2", patch: put32(hRefOrder, 7), want: qcow2.ErrCorrupt},
		{name: "no refcount table", image: "v3-64k.qcow2", patch: put32(hRefClusters, 0), want: qcow2.ErrCorrupt},
		{name: "backing name past cluster 0", image: "v3-64k.qcow2", patch: patches(put64(hBackingOff, 1<<20), put32(hBackingSize, 4)), want: qcow2.ErrCorrupt},
		{name: "backing name too long", image: "v3-64k.qcow2", patch: patches(put64(hBackingOff, 4096), put32(hBackingSize, 2000)), want: qcow2.ErrCorrupt},
		{name: "backing name past end of file", image: "tail-zlib.qcow2", patch: func(t testing.TB, b []byte) []byte {
			return put32(hBackingSize, 8)(t, put64(hBackingOff, 65000)(t, b[:65004]))
		}, want: qcow2.ErrTruncated},
		{name: "header extension too large", image: "v3-64k.qcow2", patch: func(t testing.TB, b []byte) []byte {
			return put32(extension(t, b, 0x6803f857)-4, 1<<20)(t, b)
		}, want: qcow2.ErrCorrupt, message: "header extension"},
		{name: "extended L2 with 4 KiB clusters", image: "zstd-4k.qcow2", patch: or64(hIncompat, 0x10), want: qcow2.ErrCorrupt},
		{name: "raw data file bit alone", image: "v3-64k.qcow2", patch: or64(hAutoclear, 2), want: qcow2.ErrCorrupt},
		{name: "external data file not given", image: "extdata.qcow2", want: qcow2.ErrNoDataFile, message: "extdata.data"},
		{name: "crypto header extension", image: "v3-64k.qcow2", patch: put32(extension(t, fixtureBytes(t, "v3-64k.qcow2"), 0x6803f857)-8, 0x0537be77), want: qcow2.ErrEncrypted},

		// Problems met while reading.
		{name: "L2 table unaligned", image: "v3-64k.qcow2", atRead: true, patch: func(t testing.TB, b []byte) []byte {
			return or64(int(be.Uint64(b[hL1Off:])), 0x200)(t, b)
		}, want: qcow2.ErrCorrupt, message: "L2 table offset"},
		{name: "L2 table past end of file", image: "v3-64k.qcow2", atRead: true, patch: func(t testing.TB, b []byte) []byte {
			return put64(int(be.Uint64(b[hL1Off:])), 1<<63|1<<40)(t, b)
		}, want: qcow2.ErrTruncated},
		{name: "data cluster unaligned", image: "v3-64k.qcow2", atRead: true, patch: func(t testing.TB, b []byte) []byte {
			return or64(firstEntry(t, b, 8, func(e uint64) bool { return e != 0 }), 0x200)(t, b)
		}, want: qcow2.ErrCorrupt, message: "not cluster-aligned"},
		{name: "data cluster past end of file", image: "v3-64k.qcow2", atRead: true, patch: func(t testing.TB, b []byte) []byte {
			return put64(firstEntry(t, b, 8, func(e uint64) bool { return e != 0 }), 1<<63|1<<40)(t, b)
		}, want: qcow2.ErrTruncated},
		{name: "zero flag in version 2", image: "v2-4k.qcow2", atRead: true, patch: func(t testing.TB, b []byte) []byte {
			return or64(firstEntry(t, b, 8, func(e uint64) bool { return e != 0 }), 1)(t, b)
		}, want: qcow2.ErrCorrupt, message: "version 2"},
		{name: "subcluster both allocated and zero", image: "extl2-64k.qcow2", atRead: true, patch: func(t testing.TB, b []byte) []byte {
			off := firstEntry(t, b, 16, func(e uint64) bool { return e != 0 })
			return put64(off+8, 1|1<<32)(t, b)
		}, want: qcow2.ErrCorrupt, message: "both allocated and zero"},
		{name: "allocated subcluster of unallocated cluster", image: "extl2-64k.qcow2", atRead: true, patch: func(t testing.TB, b []byte) []byte {
			off := firstEntry(t, b, 16, func(e uint64) bool { return e == 0 })
			return put64(off+8, 1)(t, b)
		}, want: qcow2.ErrCorrupt},
		{name: "compressed range past end of file", image: "tail-zlib.qcow2", atRead: true, patch: func(t testing.TB, b []byte) []byte {
			// Two more sectors: qemu's own tail runs past the end of the
			// file only within its last sector.
			off := firstEntry(t, b, 8, func(e uint64) bool { return e != 0 })
			return put64(off, be.Uint64(b[off:])+2<<54)(t, b)
		}, want: qcow2.ErrTruncated, message: "bytes past the end of the file"},
		{name: "compressed data past end of file", image: "tail-zlib.qcow2", atRead: true, patch: func(t testing.TB, b []byte) []byte {
			off := firstEntry(t, b, 8, func(e uint64) bool { return e != 0 })
			return put64(off, 1<<62|1<<40)(t, b)
		}, want: qcow2.ErrTruncated},
		{name: "compressed garbage", image: "zlib-64k.qcow2", atRead: true, patch: func(t testing.TB, b []byte) []byte {
			off := firstEntry(t, b, 8, func(e uint64) bool { return e&(1<<62) != 0 })
			coff := be.Uint64(b[off:]) & (1<<54 - 1)
			for i := range 64 {
				b[int(coff)+i] = 0xff
			}
			return b
		}, want: qcow2.ErrCorrupt, message: "compressed cluster"},
		{name: "zstd garbage", image: "zstd-64k.qcow2", atRead: true, patch: func(t testing.TB, b []byte) []byte {
			off := firstEntry(t, b, 8, func(e uint64) bool { return e&(1<<62) != 0 })
			coff := be.Uint64(b[off:]) & (1<<54 - 1)
			copy(b[coff:], "not zstd")
			return b
		}, want: qcow2.ErrCorrupt, message: "zstd"},
		{name: "compressed cluster with a data file", image: "extdata.qcow2", atRead: true, opts: []qcow2.Option{qcow2.WithDataFileReader(bytes.NewReader(nil))}, patch: func(t testing.TB, b []byte) []byte {
			return or64(l2Entry(b, 0, 8), 1<<62)(t, b)
		}, want: qcow2.ErrCorrupt, message: "external data file"},
		{name: "data file offset mismatch", image: "extdata.qcow2", atRead: true, opts: []qcow2.Option{qcow2.WithDataFileReader(bytes.NewReader(make([]byte, 4<<20)))}, patch: func(t testing.TB, b []byte) []byte {
			return put64(l2Entry(b, 0, 8), 1<<63|0x20000)(t, b)
		}, want: qcow2.ErrCorrupt, message: "does not match guest offset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := fixtureBytes(t, tt.image)
			if tt.patch != nil {
				b = tt.patch(t, b)
			}
			img, err := qcow2.New(bytes.NewReader(b), tt.opts...)
			if err == nil {
				defer img.Close()
				if !tt.atRead {
					t.Fatalf("Open succeeded, want %v", tt.want)
				}
				_, err = copyImage(io.Discard, img)
			} else if tt.atRead {
				t.Fatalf("Open = %v, want success and %v when reading", err, tt.want)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.message) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q does not mention %q on one line", err, tt.message)
			}
			var fe *qcow2.FormatError
			if !errors.As(err, &fe) {
				t.Errorf("%v is not a *FormatError", err)
			}
			t.Log(err)
		})
	}
}

// TestAllowCorrupt opens an image marked corrupt when asked to.
func TestAllowCorrupt(t *testing.T) {
	b := fixtureBytes(t, "v3-64k.qcow2")
	be.PutUint64(b[hIncompat:], be.Uint64(b[hIncompat:])|2)
	img, err := qcow2.New(bytes.NewReader(b), qcow2.WithAllowCorrupt())
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if !img.Corrupt() {
		t.Error("Corrupt() = false")
	}
	if _, err := copyImage(io.Discard, img); err != nil {
		t.Fatal(err)
	}
}

// TestHugeL1NoAllocation checks that claimed sizes are checked before
// anything is allocated for them.
func TestHugeL1NoAllocation(t *testing.T) {
	for _, patch := range []func(testing.TB, []byte) []byte{
		put32(hL1Size, 0xffffffff),
		patches(put32(hL1Size, 4<<20), put64(hSize, 4<<20<<29)), // 32 MiB of L1 that the file cannot hold
	} {
		b := patch(t, fixtureBytes(t, "v3-64k.qcow2"))
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := qcow2.New(bytes.NewReader(b))
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Fatal("Open succeeded")
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
			t.Errorf("Open allocated %d bytes before failing with %v", n, err)
		}
	}
}

// TestTruncated cuts an image at every cluster boundary: the result is an
// error (ErrTruncated where data is missing) or the same bytes, never a
// panic or wrong data.
func TestTruncated(t *testing.T) {
	for _, name := range []string{"v3-64k.qcow2", "zlib-64k.qcow2", "c512.qcow2"} {
		t.Run(name, func(t *testing.T) {
			full := fixtureBytes(t, name)
			img, err := qcow2.New(bytes.NewReader(full))
			if err != nil {
				t.Fatal(err)
			}
			want := readAll(t, img, img.Size(), int(img.Size()))
			step := max(len(full)/40, 512) &^ 511
			truncated := 0
			for cut := 0; cut < len(full); cut += step {
				img, err := qcow2.New(bytes.NewReader(full[:cut]))
				if err == nil {
					got := make([]byte, img.Size())
					_, err = img.ReadAt(got, 0)
					if err == nil || err == io.EOF {
						if !bytes.Equal(got, want) {
							t.Fatalf("cut at %d: wrong bytes and no error", cut)
						}
						continue
					}
				}
				if !errors.Is(err, qcow2.ErrTruncated) && !errors.Is(err, qcow2.ErrNotQcow2) {
					t.Errorf("cut at %d: %v, want ErrTruncated", cut, err)
				}
				truncated++
			}
			if truncated == 0 {
				t.Error("no cut was noticed")
			}
		})
	}
}

// TestBackingChains checks loops, depth limits, missing backing files and
// unknown backing formats.
func TestBackingChains(t *testing.T) {
	ov := fixtureBytes(t, "chain-ov1.qcow2")
	nameOff := int(be.Uint64(ov[hBackingOff:]))
	// withBacking returns chain-ov1 naming another backing file.
	withBacking := func(name string) []byte {
		b := bytes.Clone(ov)
		copy(b[nameOff:], name)
		be.PutUint32(b[hBackingSize:], uint32(len(name)))
		return b
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	self := write("self.qcow2", withBacking("self.qcow2"))
	a := write("a.qcow2", withBacking("b.qcow2"))
	write("b.qcow2", withBacking("a.qcow2"))
	deep := write("d1.qcow2", withBacking("d2.qcow2"))
	write("d2.qcow2", withBacking("d3.qcow2"))
	write("d3.qcow2", withBacking("chain-base.qcow2"))
	write("chain-base.qcow2", fixtureBytes(t, "chain-base.qcow2"))
	missing := write("missing.qcow2", withBacking("nothere.qcow2"))
	if err := os.Symlink("a.qcow2", filepath.Join(dir, "link.qcow2")); err != nil {
		t.Fatal(err)
	}
	viaLink := write("vialink.qcow2", withBacking("link.qcow2"))
	badFormat := withBacking("chain-base.qcow2")
	e := extension(t, badFormat, 0xe2792aca)
	copy(badFormat[e:], "vmdk\x00")
	badFmt := write("badfmt.qcow2", badFormat)

	tests := []struct {
		name string
		path string
		opts []qcow2.Option
		want error
	}{
		{"self loop", self, nil, qcow2.ErrBackingLoop},
		{"two-image loop", a, nil, qcow2.ErrBackingLoop},
		{"loop through a symlink", viaLink, nil, qcow2.ErrBackingLoop},
		{"within depth", deep, []qcow2.Option{qcow2.WithMaxBackingDepth(3)}, nil},
		{"too deep", deep, []qcow2.Option{qcow2.WithMaxBackingDepth(2)}, qcow2.ErrBackingDepth},
		{"no backing allowed", deep, []qcow2.Option{qcow2.WithMaxBackingDepth(0)}, qcow2.ErrBackingDepth},
		{"missing backing file", missing, nil, qcow2.ErrBackingFile},
		{"unknown backing format", badFmt, nil, qcow2.ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, err := qcow2.Open(tt.path, tt.opts...)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open = %v, want %v", err, tt.want)
			}
			if err == nil {
				if n := len(img.Backing()); n != 3 {
					t.Errorf("chain of %d backing files, want 3", n)
				}
				img.Close()
			} else {
				t.Log(err)
			}
		})
	}

	// Open of a ReaderAt needs an opener to follow a backing file.
	if _, err := qcow2.New(bytes.NewReader(ov)); !errors.Is(err, qcow2.ErrBackingFile) {
		t.Errorf("Open without an opener = %v, want ErrBackingFile", err)
	}
	// A caller's opener sees the parent name and the stored name.
	var asked [2]string
	img, err := qcow2.New(bytes.NewReader(ov), qcow2.WithName("/images/top.qcow2"),
		qcow2.WithBackingOpener(func(parent, name string) (*qcow2.BackingFile, error) {
			asked = [2]string{parent, name}
			base := fixtureBytes(t, "chain-base.qcow2")
			return &qcow2.BackingFile{ReaderAt: bytes.NewReader(base), Size: int64(len(base)), Name: "/images/" + name}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if asked != [2]string{"/images/top.qcow2", "chain-base.qcow2"} {
		t.Errorf("opener called with %q", asked)
	}
	if b := img.Backing(); len(b) != 1 || b[0].Path != "/images/chain-base.qcow2" || b[0].Format != "qcow2" {
		t.Errorf("Backing() = %+v", b)
	}
}

// TestFirstBadClusterReported corrupts every compressed cluster from the
// third on and reads the whole image at once, on several workers, many
// times: the error always names the first bad cluster, as a serial read
// would, whichever worker failed first.
func TestFirstBadClusterReported(t *testing.T) {
	b := fixtureBytes(t, "zlib-64k.qcow2")
	cluster := 1 << be.Uint32(b[hClusterBits:])
	var compressed []int // L2 indexes, in table 0
	for i := 0; i < cluster/8; i++ {
		if e := be.Uint64(b[l2Entry(b, i, 8):]); e&(1<<62) != 0 {
			compressed = append(compressed, i)
		}
	}
	if len(compressed) < 6 {
		t.Fatalf("only %d compressed clusters", len(compressed))
	}
	for _, i := range compressed[2:] {
		coff := be.Uint64(b[l2Entry(b, i, 8):]) & (1<<54 - 1)
		for j := range 64 {
			b[int(coff)+j] = 0xff
		}
	}
	want := fmt.Sprintf("guest offset %#x ", compressed[2]*cluster)
	img, err := qcow2.New(bytes.NewReader(b), qcow2.WithWorkers(4))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	buf := make([]byte, img.Size())
	for range 20 {
		_, err := img.ReadAt(buf, 0)
		if !errors.Is(err, qcow2.ErrCorrupt) || !strings.Contains(err.Error(), want) {
			t.Fatalf("ReadAt: %v, want ErrCorrupt naming %q", err, want)
		}
	}
}
