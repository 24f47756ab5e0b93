package raw

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The translation from allocated ranges to SEEK_DATA and SEEK_HOLE that
// Windows uses runs here on every system, against a fake filesystem.

// encodeRanges is the answer a filesystem writes: FILE_ALLOCATED_RANGE_BUFFER
// entries, offset and length.
func encodeRanges(rs ...allocatedRange) []byte {
	b := make([]byte, 0, len(rs)*allocatedRangeSize)
	for _, r := range rs {
		b = binary.LittleEndian.AppendUint64(b, uint64(r.start))
		b = binary.LittleEndian.AppendUint64(b, uint64(r.end-r.start))
	}
	return b
}

func TestParseAllocatedRanges(t *testing.T) {
	entry := func(off, n int64) []byte {
		b := binary.LittleEndian.AppendUint64(nil, uint64(off))
		return binary.LittleEndian.AppendUint64(b, uint64(n))
	}
	tests := []struct {
		name string
		in   []byte
		want []allocatedRange // nil with bad
		bad  bool
	}{
		{name: "none", in: nil, want: []allocatedRange{}},
		{name: "one", in: entry(4096, 8192), want: []allocatedRange{{4096, 12288}}},
		{name: "two", in: append(entry(0, 65536), entry(1<<20, 4096)...), want: []allocatedRange{{0, 65536}, {1 << 20, 1<<20 + 4096}}},
		{name: "touching", in: append(entry(0, 4096), entry(4096, 4096)...), want: []allocatedRange{{0, 4096}, {4096, 8192}}},
		{name: "not a file's largest offset", in: entry(0, math.MaxInt64), want: []allocatedRange{{0, math.MaxInt64}}},
		{name: "partial entry", in: entry(0, 4096)[:15], bad: true},
		{name: "entry and a half", in: append(entry(0, 4096), 1, 2, 3, 4, 5, 6, 7, 8), bad: true},
		{name: "negative offset", in: entry(-4096, 4096), bad: true},
		{name: "empty range", in: entry(4096, 0), bad: true},
		{name: "negative length", in: entry(4096, -1), bad: true},
		{name: "end overflows", in: entry(1, math.MaxInt64), bad: true},
		{name: "overlapping", in: append(entry(0, 8192), entry(4096, 8192)...), bad: true},
		{name: "descending", in: append(entry(8192, 4096), entry(0, 4096)...), bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAllocatedRanges(tt.in)
			if tt.bad {
				if !errors.Is(err, errBadRanges) {
					t.Fatalf("parseAllocatedRanges = %v, %v; want errBadRanges", got, err)
				}
				t.Logf("%v", err)
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("parseAllocatedRanges = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestPutRangeQuery(t *testing.T) {
	var b [allocatedRangeSize]byte
	putRangeQuery(&b, 5<<20)
	want := encodeRanges(allocatedRange{5 << 20, math.MaxInt64})
	if string(b[:]) != string(want) {
		t.Fatalf("query = %x, want %x", b, want)
	}
}

// fakeFS answers allocated-range queries for one file as NTFS does: the
// query's offset rounded down to round, at most per ranges per answer,
// ranges that may touch, the first one clipped to the rounded offset.
type fakeFS struct {
	ranges  []allocatedRange
	round   int64
	per     int
	queries []int64
	// stalled is set when an answer was full of ranges that end at or
	// before the offset asked, so that asking again cannot get further.
	stalled bool
}

func (f *fakeFS) query(off int64, out []byte) (int, bool, error) {
	f.queries = append(f.queries, off)
	asked := off
	if f.round > 0 {
		off -= off % f.round
	}
	room := min(len(out)/allocatedRangeSize, f.per)
	var answer []allocatedRange
	for _, r := range f.ranges {
		if r.end <= off {
			continue
		}
		if len(answer) == room {
			if len(answer) == 0 || answer[len(answer)-1].end <= asked {
				f.stalled = true
			}
			return copy(out, encodeRanges(answer...)), true, nil
		}
		answer = append(answer, allocatedRange{max(r.start, off), r.end})
	}
	return copy(out, encodeRanges(answer...)), false, nil
}

// allocatedAt is the model: whether byte x of the file is allocated.
func allocatedAt(rs []allocatedRange, x int64) bool {
	for _, r := range rs {
		if r.start <= x && x < r.end {
			return true
		}
	}
	return false
}

// modelSeek answers SEEK_DATA and SEEK_HOLE byte by byte.
func modelSeek(rs []allocatedRange, off int64, data bool) (int64, error) {
	for x := off; ; x++ {
		if x >= rs[len(rs)-1].end {
			if data {
				return 0, errNoData
			}
			return x, nil
		}
		if allocatedAt(rs, x) == data {
			return x, nil
		}
	}
}

func TestSeekAllocated(t *testing.T) {
	files := map[string][]allocatedRange{
		"one range":          {{100, 200}},
		"from zero":          {{0, 64}, {128, 130}},
		"touching":           {{16, 32}, {32, 48}, {48, 64}, {80, 96}},
		"many small":         {{1, 2}, {3, 4}, {5, 6}, {7, 8}, {9, 10}, {11, 12}, {13, 14}},
		"touching, long run": {{0, 10}, {10, 20}, {20, 30}, {30, 40}, {40, 50}, {50, 60}, {60, 70}, {70, 71}, {90, 91}},
	}
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range 20 {
		var rs []allocatedRange
		for pos := int64(0); len(rs) < 12; {
			pos += rng.Int64N(3) * rng.Int64N(20) // often zero: touching ranges
			n := 1 + rng.Int64N(20)
			rs = append(rs, allocatedRange{pos, pos + n})
			pos += n
		}
		files["random "+string(rune('a'+i))] = rs
	}
	stalls := 0
	for name, rs := range files {
		end := rs[len(rs)-1].end
		for _, round := range []int64{0, 16} {
			for _, per := range []int{1, 2, 3, allocatedRangesPerQuery} {
				for off := int64(0); off <= end+3; off++ {
					for _, data := range []bool{true, false} {
						fs := &fakeFS{ranges: rs, round: round, per: per}
						got, err := seekAllocated(fs.query, off, data)
						want, werr := modelSeek(rs, off, data)
						if fs.stalled {
							// Conservative: data no later, a hole no
							// sooner than the truth.
							if err != nil || (data && werr == nil && got > want) || (!data && got < want) {
								t.Fatalf("%s, round %d, %d per answer, stalled: seek(%d, data %v) = %d, %v; want conservative for %d, %v",
									name, round, per, off, data, got, err, want, werr)
							}
							stalls++
							continue
						}
						if got != want || !errors.Is(err, werr) {
							t.Fatalf("%s, round %d, %d per answer: seek(%d, data %v) = %d, %v; want %d, %v (queries at %v)",
								name, round, per, off, data, got, err, want, werr, fs.queries)
						}
					}
				}
			}
		}
	}
	t.Logf("%d answers given up conservatively", stalls)
}

// TestSeekAllocatedQueries checks how often the filesystem is asked: once
// when the answer fits, again from where a full answer stopped.
func TestSeekAllocatedQueries(t *testing.T) {
	rs := []allocatedRange{{0, 10}, {10, 20}, {20, 30}, {30, 40}, {50, 60}}
	fs := &fakeFS{ranges: rs, per: 2}
	if got, err := seekAllocated(fs.query, 5, false); got != 40 || err != nil {
		t.Fatalf("SEEK_HOLE at 5 = %d, %v; want 40", got, err)
	}
	if want := []int64{5, 20, 40}; !slices.Equal(fs.queries, want) {
		t.Errorf("queries at %v, want %v", fs.queries, want)
	}
	fs = &fakeFS{ranges: rs, per: allocatedRangesPerQuery}
	if got, err := seekAllocated(fs.query, 45, true); got != 50 || err != nil {
		t.Fatalf("SEEK_DATA at 45 = %d, %v; want 50", got, err)
	}
	if len(fs.queries) != 1 {
		t.Errorf("queries at %v, want one", fs.queries)
	}
}

func TestSeekAllocatedErrors(t *testing.T) {
	failure := errors.New("device gone")
	tests := []struct {
		name  string
		query rangeQuery
		want  error
	}{
		{
			name:  "query fails",
			query: func(int64, []byte) (int, bool, error) { return 0, false, failure },
			want:  failure,
		},
		{
			name:  "not supported",
			query: func(int64, []byte) (int, bool, error) { return 0, false, errNoSeekData },
			want:  errNoSeekData,
		},
		{
			name: "malformed answer",
			query: func(_ int64, out []byte) (int, bool, error) {
				return copy(out, encodeRanges(allocatedRange{0, 10})[:12]), false, nil
			},
			want: errBadRanges,
		},
		{
			name:  "more than the buffer",
			query: func(_ int64, out []byte) (int, bool, error) { return len(out) + 16, false, nil },
			want:  errBadRanges,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, data := range []bool{true, false} {
				got, err := seekAllocated(tt.query, 40, data)
				if !errors.Is(err, tt.want) {
					t.Errorf("seek(40, data %v) = %d, %v; want %v", data, got, err, tt.want)
				}
			}
		})
	}
}

// TestSeekAllocatedStalled: answers that cannot get past the offset, asked
// again, would loop forever; they give conservative answers instead.
func TestSeekAllocatedStalled(t *testing.T) {
	tests := []struct {
		name  string
		query rangeQuery
	}{
		{"more, but empty", func(int64, []byte) (int, bool, error) { return 0, true, nil }},
		{"more, but all before the offset", func(_ int64, out []byte) (int, bool, error) {
			return copy(out, encodeRanges(allocatedRange{0, 10}, allocatedRange{20, 30})), true, nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := seekAllocated(tt.query, 40, true); got != 40 || err != nil {
				t.Errorf("SEEK_DATA at 40 = %d, %v; want 40 (data may be here)", got, err)
			}
			if got, err := seekAllocated(tt.query, 40, false); got != math.MaxInt64 || err != nil {
				t.Errorf("SEEK_HOLE at 40 = %d, %v; want math.MaxInt64 (no hole known)", got, err)
			}
		})
	}
}
