package vma

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
)

// TestSalvageSlotDamage: an extent whose header passes its checksum but
// whose slots break a rule is skipped whole (none of its clusters is
// recorded, those that came before it stay) and reading goes on right
// after it, without a search.
func TestSalvageSlotDamage(t *testing.T) {
	const c = ClusterSize
	full := uint16(0xffff)
	for _, tc := range []struct {
		name    string
		sizes   []int64
		exts    []craftedExtent
		want    error
		missing string
	}{
		{"duplicate of an earlier extent", []int64{4 * c}, []craftedExtent{
			ext(makeBlockInfo(full, 1, 0), makeBlockInfo(0, 1, 1)),
			ext(makeBlockInfo(full, 1, 2), makeBlockInfo(0, 1, 1)),
			ext(makeBlockInfo(full, 1, 3)),
		}, ErrDuplicateCluster, "[{1 drive-scsi0 131072 65536}]"},
		{"duplicate inside the extent", []int64{4 * c}, []craftedExtent{
			ext(makeBlockInfo(full, 1, 0)),
			ext(makeBlockInfo(full, 1, 1), makeBlockInfo(full, 1, 2), makeBlockInfo(0, 1, 1)),
			ext(makeBlockInfo(full, 1, 3)),
		}, ErrDuplicateCluster, "[{1 drive-scsi0 65536 131072}]"},
		{"unknown device", []int64{3 * c}, []craftedExtent{
			ext(makeBlockInfo(full, 1, 0)),
			ext(makeBlockInfo(full, 1, 1), makeBlockInfo(full, 7, 0)),
			ext(makeBlockInfo(full, 1, 2)),
		}, ErrUnknownDevice, "[{1 drive-scsi0 65536 65536}]"},
		{"past the end", []int64{2*c + 4096, c}, []craftedExtent{
			ext(makeBlockInfo(full, 1, 0)),
			ext(makeBlockInfo(0, 2, 0), makeBlockInfo(3, 1, 2)),
			ext(makeBlockInfo(full, 1, 1)),
		}, ErrBeyondEnd, "[{1 drive-scsi0 131072 4096} {2 drive-scsi1 0 65536}]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := craftArchive(t, tc.sizes, nil, tc.exts...)
			r, err := NewReader(bytes.NewReader(b), WithSalvage())
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for {
				e, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				for _, cl := range e.Clusters {
					got = append(got, fmt.Sprintf("%d:%d", cl.Device, cl.Index))
				}
			}
			if m := fmt.Sprint(slices.Collect(r.Missing())); m != tc.missing {
				t.Errorf("missing %s, want %s (delivered %v)", m, tc.missing, got)
			}
			dmg, more := r.Damage()
			if len(dmg) != 1 || more != 0 || !errors.Is(dmg[0].Err, tc.want) {
				t.Fatalf("damage %+v, want one of kind %v", dmg, tc.want)
			}
			// Each crafted extent is a header and 0xaa blocks: resuming
			// right after the damaged one is one header and its data on.
			second := r.hdr.Size + extentHeaderSize + int64(tc.exts[0].countBlocks())*BlockSize
			resume := second + extentHeaderSize + int64(tc.exts[1].countBlocks())*BlockSize
			if dmg[0].Offset != second || dmg[0].Resume != resume {
				t.Errorf("damage at %d resuming at %d, want %d and %d", dmg[0].Offset, dmg[0].Resume, second, resume)
			}
		})
	}
}

func (e craftedExtent) countBlocks() int {
	h := extentHeader{}
	copy(h.info[:], e.slots)
	return h.maskBlocks()
}

// TestSalvageDamageIsCapped: a stream of a thousand and more damaged
// extents keeps a bounded record.
func TestSalvageDamageIsCapped(t *testing.T) {
	var exts []craftedExtent
	for i := range maxDamage + 50 {
		exts = append(exts, ext(makeBlockInfo(0, 1, uint32(2*i))), craftedExtent{slots: []blockInfo{makeBlockInfo(0, 1, uint32(2*i+1))}, blockCount: -1, badMD5: true})
	}
	b := craftArchive(t, []int64{int64(2*(maxDamage+50)) * ClusterSize}, nil, exts...)
	r, err := NewReader(bytes.NewReader(b), WithSalvage())
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := r.Next(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	dmg, more := r.Damage()
	if len(dmg) != maxDamage || more != 50 {
		t.Errorf("%d damage records and %d more, want %d and 50", len(dmg), more, maxDamage)
	}
	n := 0
	for m := range r.Missing() {
		if m.Length != ClusterSize || m.Start%(2*ClusterSize) != ClusterSize {
			t.Fatalf("missing %+v", m)
		}
		n++
	}
	if n != maxDamage+50 {
		t.Errorf("%d missing ranges, want %d", n, maxDamage+50)
	}
}
