package fuzz

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/vmatool/vmatool/vma"
)

// FuzzVMASalvage feeds arbitrary bytes to a salvaging reader. It must
// never panic and always end; it delivers each cluster of a device at most
// once, within the device; the missing ranges it reports are in order,
// apart, within their devices, and exactly the clusters it did not
// deliver; and an archive the strict reader accepts salvages to the same
// bytes with nothing missing or damaged.
func FuzzVMASalvage(f *testing.F) {
	addVMASeeds(f)
	f.Fuzz(checkSalvage)
}

// FuzzVMASalvageChecksummed is FuzzVMASalvage with the checksums fixed
// first, so that damaged slots, sizes and block counts get past them.
func FuzzVMASalvageChecksummed(f *testing.F) {
	addVMASeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) { checkSalvage(t, fixChecksums(data)) })
}

// checkSalvage is the body of the salvage targets.
func checkSalvage(t *testing.T, data []byte) {
	ctx := context.Background()
	r, err := vma.NewReader(bytes.NewReader(data), vma.WithSalvage())
	if err != nil {
		return // a bad header is not salvaged
	}
	h := r.Header()
	if diskBytes(h) > fuzzMaxDisks {
		return
	}
	sizes := map[int]int64{}
	for _, d := range h.Devices {
		sizes[d.ID] = d.Size
	}
	seen := map[[2]int64]bool{}
	for {
		ext, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("a salvaging reader failed: %v", err)
		}
		for _, c := range ext.Clusters {
			k := [2]int64{int64(c.Device), int64(c.Index)}
			if seen[k] || int64(c.Index)*vma.ClusterSize >= sizes[c.Device] {
				t.Fatalf("cluster %d of device %d delivered twice or past the end", c.Index, c.Device)
			}
			seen[k] = true
		}
	}
	prev := vma.MissingRange{Device: -1}
	missing := map[[2]int64]bool{}
	for m := range r.Missing() {
		if m.Length <= 0 || m.Start%vma.ClusterSize != 0 || m.Start+m.Length > sizes[m.Device] ||
			(m.Device == prev.Device && m.Start <= prev.Start+prev.Length) || m.Device < prev.Device {
			t.Fatalf("missing range %+v after %+v", m, prev)
		}
		prev = m
		for c := m.Start / vma.ClusterSize; c*vma.ClusterSize < m.Start+m.Length; c++ {
			missing[[2]int64{int64(m.Device), c}] = true
		}
	}
	for _, d := range h.Devices {
		if d.IsVMState() {
			continue
		}
		for c := int64(0); c*vma.ClusterSize < d.Size; c++ {
			k := [2]int64{int64(d.ID), c}
			if seen[k] == missing[k] {
				t.Fatalf("cluster %d of %s: delivered %v, reported missing %v", c, d.Name, seen[k], missing[k])
			}
		}
	}

	// Where the strict reader accepts the archive, salvage changes
	// nothing.
	strict, _ := openFuzzArchive(data)
	if _, err := vma.Verify(ctx, strict); err != nil {
		return
	}
	want, got := extractAll(t, data), extractAll(t, data, vma.WithSalvage())
	for id := range want {
		if !bytes.Equal(want[id], got[id]) {
			t.Fatalf("device %d: salvage of a valid archive differs", id)
		}
	}
	if dmg, more := r.Damage(); len(dmg) != 0 || more != 0 || len(missing) != 0 {
		t.Fatalf("a valid archive salvaged with damage %v or missing clusters", dmg)
	}
}

func extractAll(t *testing.T, data []byte, opts ...vma.ReaderOption) map[int][]byte {
	r, err := vma.NewReader(bytes.NewReader(data), opts...)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int][]byte{}
	targets := map[int]io.WriterAt{}
	for _, d := range r.Header().Devices {
		tg := &target{b: make([]byte, d.Size)}
		targets[d.ID] = tg
		defer func() { out[d.ID] = tg.b }()
	}
	if err := vma.Extract(context.Background(), r, targets); err != nil {
		t.Fatalf("extract: %v", err)
	}
	return out
}
