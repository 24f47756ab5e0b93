package vma_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"testing"

	"github.com/vmatool/vmatool/vma"
)

// The salvage tests take real archives apart: they list where each extent
// is and which clusters it holds, damage or cut the archive, and check
// that a salvaging Reader delivers exactly the clusters that survived, with
// the intact archive's bytes, and reports exactly the rest as missing.

// extentMap is the layout of an intact archive.
type extentMap struct {
	headerSize int64
	extents    []extentInfo
	images     map[int][]byte // dev_id → the device's bytes
	sizes      map[int]int64
	names      map[int]string
}

type extentInfo struct {
	off, size int64
	clusters  []slotInfo // in slot order
}

type slotInfo struct {
	dev     int
	index   uint32
	dataEnd int64 // where the slot's data ends, relative to the extent's body
}

func mapArchive(t *testing.T, b []byte) *extentMap {
	t.Helper()
	r, err := vma.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	m := &extentMap{headerSize: r.Header().Size, images: map[int][]byte{}, sizes: map[int]int64{}, names: map[int]string{}}
	for _, d := range r.Header().Devices {
		m.images[d.ID] = make([]byte, d.Size)
		m.sizes[d.ID] = d.Size
		m.names[d.ID] = d.Name
	}
	for {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		info := extentInfo{off: e.Offset, size: e.Size}
		pos := int64(0)
		for _, c := range e.Clusters {
			pos += int64(bits.OnesCount16(c.Mask)) * vma.BlockSize
			info.clusters = append(info.clusters, slotInfo{c.Device, c.Index, pos})
			img := m.images[c.Device]
			for blk := range vma.BlocksPerCluster {
				if data := c.Block(blk); data != nil {
					off := int64(c.Index)*vma.ClusterSize + int64(blk)*vma.BlockSize
					copy(img[off:min(off+vma.BlockSize, int64(len(img)))], data)
				}
			}
		}
		m.extents = append(m.extents, info)
	}
	return m
}

// missingRanges turns a set of missing clusters into the ranges Missing
// must report, in dev_id and offset order.
func (m *extentMap) missingRanges(missing map[[2]int]bool) []vma.MissingRange {
	var ids []int
	for id := range m.sizes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var out []vma.MissingRange
	for _, id := range ids {
		size := m.sizes[id]
		n := (size + vma.ClusterSize - 1) / vma.ClusterSize
		for c := int64(0); c < n; c++ {
			if !missing[[2]int{id, int(c)}] {
				continue
			}
			start, end := c*vma.ClusterSize, min((c+1)*vma.ClusterSize, size)
			if k := len(out); k > 0 && out[k-1].Device == id && out[k-1].Start+out[k-1].Length == start {
				out[k-1].Length = end - out[k-1].Start
				continue
			}
			out = append(out, vma.MissingRange{Device: id, Name: m.names[id], Start: start, Length: end - start})
		}
	}
	return out
}

// salvaged is what a salvaging extraction gave.
type salvaged struct {
	images  map[int][]byte
	missing []vma.MissingRange
	damage  []vma.Damage
}

func salvage(t *testing.T, archive io.Reader) *salvaged {
	t.Helper()
	r, err := vma.NewReader(archive, vma.WithSalvage())
	if err != nil {
		t.Fatal(err)
	}
	targets := map[int]io.WriterAt{}
	mem := map[int]*memTarget{}
	for _, d := range r.Header().Devices {
		mem[d.ID] = &memTarget{b: make([]byte, d.Size)}
		targets[d.ID] = mem[d.ID]
	}
	if err := vma.Extract(context.Background(), r, targets); err != nil {
		t.Fatalf("salvaging Extract: %v", err)
	}
	s := &salvaged{images: map[int][]byte{}}
	for id, m := range mem {
		s.images[id] = m.b
	}
	s.missing = slices.Collect(r.Missing())
	s.damage, _ = r.Damage()
	return s
}

// check compares a salvage with the intact archive: the missing ranges
// are exactly want, they read as zeros, and everything else is the
// intact archive's bytes.
func (s *salvaged) check(t *testing.T, m *extentMap, want []vma.MissingRange) {
	t.Helper()
	if fmt.Sprint(s.missing) != fmt.Sprint(want) {
		t.Errorf("missing %v\nwant    %v", s.missing, want)
	}
	for id, img := range m.images {
		got := bytes.Clone(s.images[id])
		exp := bytes.Clone(img)
		for _, r := range want {
			if r.Device != id {
				continue
			}
			if !allZero(got[r.Start : r.Start+r.Length]) {
				t.Errorf("device %d: missing range [%d, +%d) holds data", id, r.Start, r.Length)
			}
			clear(exp[r.Start : r.Start+r.Length])
			clear(got[r.Start : r.Start+r.Length])
		}
		if !bytes.Equal(got, exp) {
			t.Errorf("device %d: salvaged bytes differ from the intact archive's outside the missing ranges", id)
		}
	}
}

func allZero(b []byte) bool { return bytes.Count(b, []byte{0}) == len(b) }

func v06(t *testing.T) ([]byte, *extentMap) {
	t.Helper()
	b, err := readFile(vectorDir + "/v06-out-of-order.vma")
	if err != nil {
		t.Fatal(err)
	}
	m := mapArchive(t, b)
	// The intact archive is what the manifest says.
	for _, v := range loadManifest(t) {
		if v.File != "v06-out-of-order.vma" {
			continue
		}
		for i, d := range v.Devices {
			if got := sha(m.images[i+1]); got != d.SHA256 {
				t.Fatalf("intact %s: sha256 %s, manifest %s", d.Name, got, d.SHA256)
			}
		}
	}
	if len(m.extents) < 3 {
		t.Fatalf("v06 has %d extents; the tests want several", len(m.extents))
	}
	return b, m
}

// TestSalvageCutAtEveryExtentBoundary cuts the out-of-order two-disk
// vector where each extent starts, and at its end.
func TestSalvageCutAtEveryExtentBoundary(t *testing.T) {
	b, m := v06(t)
	for k := 0; k <= len(m.extents); k++ {
		cut := int64(len(b))
		if k < len(m.extents) {
			cut = m.extents[k].off
		}
		t.Run(fmt.Sprintf("cut at %d", cut), func(t *testing.T) {
			missing := map[[2]int]bool{}
			for _, e := range m.extents[k:] {
				for _, c := range e.clusters {
					missing[[2]int{c.dev, int(c.index)}] = true
				}
			}
			s := salvage(t, bytes.NewReader(b[:cut]))
			s.check(t, m, m.missingRanges(missing))
			// A cut on a boundary damages nothing: clusters are missing.
			if len(s.damage) != 0 {
				t.Errorf("damage %v", s.damage)
			}
			// Without salvage the same archive is refused.
			r, err := vma.NewReader(bytes.NewReader(b[:cut]))
			if err == nil {
				_, err = vma.Verify(context.Background(), r)
			}
			if k < len(m.extents) && !errors.Is(err, vma.ErrMissingCluster) {
				t.Errorf("without salvage: %v, want ErrMissingCluster", err)
			}
		})
	}
}

// TestSalvageCutAnywhere cuts the vector at every block boundary and a
// byte either side, and inside and just after each extent header: an
// extent cut inside its data still gives the clusters whose data arrived
// whole, in slot order up to the first cut one.
func TestSalvageCutAnywhere(t *testing.T) {
	b, m := v06(t)
	var cuts []int64
	for cut := m.headerSize; cut < int64(len(b)); cut += vma.BlockSize {
		cuts = append(cuts, cut, cut+1, cut+vma.BlockSize-1)
	}
	for _, e := range m.extents {
		cuts = append(cuts, e.off+1, e.off+256, e.off+511, e.off+512, e.off+513)
	}
	for _, c := range cuts {
		if c >= int64(len(b)) {
			continue
		}
		missing := map[[2]int]bool{}
		cutExtent := false
		for _, e := range m.extents {
			for _, s := range e.clusters {
				arrived := e.off+512+s.dataEnd <= c
				if !arrived || (e.off < c && c < e.off+512) {
					missing[[2]int{s.dev, int(s.index)}] = true
				}
			}
			if e.off < c && c < e.off+e.size {
				cutExtent = true
			}
		}
		// Slots after the first one that was cut are missing too.
		for _, e := range m.extents {
			cutOff := false
			for _, s := range e.clusters {
				if missing[[2]int{s.dev, int(s.index)}] {
					cutOff = true
				}
				if cutOff {
					missing[[2]int{s.dev, int(s.index)}] = true
				}
			}
		}
		s := salvage(t, bytes.NewReader(b[:c]))
		s.check(t, m, m.missingRanges(missing))
		if cutExtent != (len(s.damage) == 1) || (cutExtent && (s.damage[0].Resume != -1 || !errors.Is(s.damage[0].Err, vma.ErrShortExtent))) {
			t.Fatalf("cut at %d: damage %v", c, s.damage)
		}
	}
}

// resum fixes an extent header's checksum after a change.
func resum(hdr []byte) {
	clear(hdr[24:40])
	sum := md5.Sum(hdr[:512])
	copy(hdr[24:], sum[:])
}

// TestSalvageDamagedMiddleExtent damages the middle extent of the vector
// in each way the reader checks for, and hides decoy headers in its data.
func TestSalvageDamagedMiddleExtent(t *testing.T) {
	b, m := v06(t)
	mid := m.extents[1]
	next := m.extents[2].off
	cases := []struct {
		name   string
		damage func(b []byte)
		want   error
		resume int64
	}{
		{"bad checksum", func(b []byte) { b[mid.off+100] ^= 1 }, vma.ErrExtentChecksum, next},
		{"bad magic", func(b []byte) { b[mid.off+3] = 'X'; resum(b[mid.off:]) }, vma.ErrExtentMagic, next},
		{"bad uuid", func(b []byte) { b[mid.off+8] ^= 0xff; resum(b[mid.off:]) }, vma.ErrExtentUUID, next},
		{"wrong block count", func(b []byte) { b[mid.off+7]++; resum(b[mid.off:]) }, vma.ErrBlockCount, next},
		{"zeroed header", func(b []byte) { clear(b[mid.off : mid.off+512]) }, vma.ErrExtentChecksum, next},
		{"decoys in the data", func(b []byte) {
			b[mid.off+100] ^= 1
			// Magic and uuid, but no valid checksum: not a header.
			d := b[mid.off+512+4096:]
			copy(d, b[mid.off:mid.off+512])
			d[200] ^= 1
			// A header that is valid but has another uuid.
			d = b[mid.off+512+3*4096+17:]
			copy(d, b[m.extents[0].off:m.extents[0].off+512])
			d[8] ^= 0xff
			resum(d)
		}, vma.ErrExtentChecksum, next},
		{"header cut by the end of a magic", func(b []byte) {
			b[mid.off+100] ^= 1
			copy(b[next-3:], "VMA")
		}, vma.ErrExtentChecksum, next},
	}
	var missing = map[[2]int]bool{}
	for _, c := range mid.clusters {
		missing[[2]int{c.dev, int(c.index)}] = true
	}
	want := m.missingRanges(missing)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := bytes.Clone(b)
			tc.damage(d)
			s := salvage(t, bytes.NewReader(d))
			s.check(t, m, want)
			if len(s.damage) != 1 || s.damage[0].Offset != mid.off || s.damage[0].Resume != tc.resume || !errors.Is(s.damage[0].Err, tc.want) {
				t.Errorf("damage %+v; want one at %d, resuming at %d, of kind %v", s.damage, mid.off, tc.resume, tc.want)
			}
			// Without salvage the archive is refused, with the same kind.
			r, err := vma.NewReader(bytes.NewReader(d))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := vma.Verify(context.Background(), r); !errors.Is(err, tc.want) {
				t.Errorf("without salvage: %v, want %v", err, tc.want)
			}
		})
	}
}

// TestSalvageOneByteStream feeds the damaged archive one byte per Read,
// so that every window and pushback boundary is crossed.
func TestSalvageOneByteStream(t *testing.T) {
	b, m := v06(t)
	d := bytes.Clone(b)
	d[m.extents[0].off+300] ^= 1
	missing := map[[2]int]bool{}
	for _, c := range m.extents[0].clusters {
		missing[[2]int{c.dev, int(c.index)}] = true
	}
	s := salvage(t, &oneByteReader{bytes.NewReader(d)})
	s.check(t, m, m.missingRanges(missing))
}

type oneByteReader struct{ r io.Reader }

func (o *oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

// TestSalvageReadError ends the stream with an error in the middle of the
// last extent: what came before is delivered, and the error is the damage.
func TestSalvageReadError(t *testing.T) {
	b, m := v06(t)
	last := m.extents[len(m.extents)-1]
	broken := errors.New("disk on fire")
	s := salvage(t, io.MultiReader(bytes.NewReader(b[:last.off+100]), &errReader{broken}))
	missing := map[[2]int]bool{}
	for _, c := range last.clusters {
		missing[[2]int{c.dev, int(c.index)}] = true
	}
	s.check(t, m, m.missingRanges(missing))
	if len(s.damage) != 1 || !errors.Is(s.damage[0].Err, broken) || s.damage[0].Offset != last.off {
		t.Errorf("damage %+v", s.damage)
	}
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }

// TestSalvageGarbageAfterHeader puts 8 MiB of decoys after the header:
// magic and uuid every 24 bytes, none with a valid checksum. The search
// must end, and find nothing.
func TestSalvageGarbageAfterHeader(t *testing.T) {
	b, m := v06(t)
	junk := make([]byte, 8<<20)
	for i := 0; i+24 <= len(junk); i += 24 {
		copy(junk[i:], "VMAE\x00\x00\x00\x01")
		copy(junk[i+8:], b[m.extents[0].off+8:m.extents[0].off+24])
	}
	in := append(bytes.Clone(b[:m.headerSize]), junk...)
	s := salvage(t, bytes.NewReader(in))
	all := map[[2]int]bool{}
	for _, e := range m.extents {
		for _, c := range e.clusters {
			all[[2]int{c.dev, int(c.index)}] = true
		}
	}
	s.check(t, m, m.missingRanges(all))
	if len(s.damage) != 1 || s.damage[0].Resume != -1 {
		t.Errorf("damage %+v", s.damage)
	}
}

// TestSalvageCompleteArchive: nothing missing, nothing damaged, and the
// vectors unpack as the manifest says.
func TestSalvageCompleteArchive(t *testing.T) {
	for _, v := range loadManifest(t) {
		if v.Expect != "ok" {
			continue
		}
		t.Run(v.File, func(t *testing.T) {
			f, err := readFile(vectorDir + "/" + v.File)
			if err != nil {
				t.Fatal(err)
			}
			in, _, err := vma.Decompress(bytes.NewReader(f))
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			s := salvage(t, in)
			if len(s.missing) != 0 || len(s.damage) != 0 {
				t.Errorf("missing %v, damage %v", s.missing, s.damage)
			}
			for i, d := range v.Devices {
				if got := sha(s.images[i+1]); got != d.SHA256 {
					t.Errorf("%s: sha256 %s, want %s", d.Name, got, d.SHA256)
				}
			}
		})
	}
}

// TestSalvageHeaderMustBeIntact: a bad header is still fatal.
func TestSalvageHeaderMustBeIntact(t *testing.T) {
	b, err := readFile(vectorDir + "/e01-header-md5.vma")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vma.NewReader(bytes.NewReader(b), vma.WithSalvage()); !errors.Is(err, vma.ErrHeaderChecksum) {
		t.Errorf("bad header with salvage: %v, want ErrHeaderChecksum", err)
	}
}

// TestSalvageErrorVectors salvages the damaged reference vectors: e02's
// one extent has a bad checksum (everything missing), e03 is cut inside
// its one extent, e04 lacks its extent.
func TestSalvageErrorVectors(t *testing.T) {
	intact, err := readFile(vectorDir + "/v01-single.vma")
	if err != nil {
		t.Fatal(err)
	}
	m := mapArchive(t, intact)
	for _, tc := range []struct {
		file string
		kind error
	}{
		{"e02-extent-md5.vma", vma.ErrExtentChecksum},
		{"e03-truncated.vma", vma.ErrShortExtent},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := readFile(vectorDir + "/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			s := salvage(t, bytes.NewReader(b))
			if len(s.damage) != 1 || !errors.Is(s.damage[0].Err, tc.kind) {
				t.Fatalf("damage %+v, want one of kind %v", s.damage, tc.kind)
			}
			missing := map[[2]int]bool{}
			e := m.extents[0]
			for _, c := range e.clusters {
				if e.off+512+c.dataEnd > int64(len(b)) || tc.kind == vma.ErrExtentChecksum {
					missing[[2]int{c.dev, int(c.index)}] = true
				}
			}
			want := m.missingRanges(missing)
			if len(want) == 0 {
				t.Fatal("nothing missing: the vector is not what this test expects")
			}
			s.check(t, m, want)
		})
	}
}
