package codec

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/adler32"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// lzopFixture is v01-single.vma as Proxmox's vzdump compresses it with
// "lzop" (LZO1X-1, adler32 of each block's uncompressed data).
const (
	lzopFixture       = "../../testdata/vectors/v01-single.vma.lzo"
	lzopFixtureSHA256 = "4e1a7710bb6f8ff9970ccada70b6e59fe3a91f7655a8b7f6553e9529b77bcd21"
)

// lzopDecode decompresses all of b through Read, in the odd-sized reads
// that a bufio.Reader or io.ReadFull would make.
func lzopDecode(b []byte) ([]byte, error) {
	z, err := newLzopReader(bytes.NewReader(b), 2)
	if err != nil {
		return nil, err
	}
	var out []byte
	buf := make([]byte, 12345)
	for {
		n, err := z.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// lzopDecodeWriteTo decompresses all of b through io.Copy, which uses
// WriteTo.
func lzopDecodeWriteTo(b []byte) ([]byte, error) {
	z, err := newLzopReader(bytes.NewReader(b), 2)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	_, err = io.Copy(&out, z)
	return out.Bytes(), err
}

func readLzopFixture(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(lzopFixture)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLzopFixture(t *testing.T) {
	in := readLzopFixture(t)
	out, err := lzopDecode(in)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(out); hex.EncodeToString(sum[:]) != lzopFixtureSHA256 {
		t.Fatalf("decompressed %d bytes with sha256 %x, want %s", len(out), sum, lzopFixtureSHA256)
	}
	out2, err := lzopDecodeWriteTo(in)
	if err != nil || !bytes.Equal(out, out2) {
		t.Fatalf("WriteTo: %d bytes, %v; Read gave %d bytes", len(out2), err, len(out))
	}
	// iotest.TestReader checks Read's contract with many buffer sizes.
	z, err := newLzopReader(bytes.NewReader(in), 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := iotest.TestReader(z, out); err != nil {
		t.Fatal(err)
	}
}

// TestLzopTrailing checks that the reader stops at the end marker: what
// follows stays in the underlying reader, and Read keeps returning io.EOF.
func TestLzopTrailing(t *testing.T) {
	in := readLzopFixture(t)
	trailer := []byte("next member")
	r := bytes.NewReader(append(in[:len(in):len(in)], trailer...))
	z, err := newLzopReader(r, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, z); err != nil {
		t.Fatal(err)
	}
	if n, err := z.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("Read after the end = %d, %v; want 0, io.EOF", n, err)
	}
	if rest, _ := io.ReadAll(r); !bytes.Equal(rest, trailer) {
		t.Errorf("reader consumed past the end marker: %q left, want %q", rest, trailer)
	}
}

// lzopBinary returns the path of the lzop command, or skips the test when
// it is missing, unless VMATOOL_REQUIRE_TOOLS=1 demands it.
func lzopBinary(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("lzop")
	if err != nil {
		if os.Getenv("VMATOOL_REQUIRE_TOOLS") == "1" {
			t.Fatal("lzop not found and VMATOOL_REQUIRE_TOOLS=1")
		}
		t.Skip("lzop not installed (apt-get install lzop); skipping tests against its output")
	}
	return path
}

// lzopInputs are the data shapes that exercise different LZO1X paths:
// stored (incompressible) blocks, long matches, short blocks and several
// 256 KiB lzop blocks.
func lzopInputs() map[string][]byte {
	rng := rand.New(rand.NewPCG(7, 9))
	random := make([]byte, 700<<10)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	text := []byte(strings.Repeat("scsi0: local-lvm:vm-100-disk-0,size=32G\nmemory: 2048\n", 20000))
	mixed := make([]byte, 0, 2<<20)
	for len(mixed) < 2<<20 {
		switch rng.IntN(4) {
		case 0:
			mixed = append(mixed, make([]byte, rng.IntN(200<<10))...)
		case 1:
			mixed = append(mixed, random[:rng.IntN(len(random))]...)
		case 2:
			mixed = append(mixed, text[:rng.IntN(len(text))]...)
		default:
			// short repeats: matches at every distance class
			n := 1 + rng.IntN(3000)
			for range 50 {
				mixed = append(mixed, random[n:n+rng.IntN(64)]...)
				mixed = append(mixed, text[:rng.IntN(n)]...)
			}
		}
	}
	return map[string][]byte{
		"empty":     {},
		"one byte":  {42},
		"short":     []byte("hello, lzop"),
		"zeros":     make([]byte, 1<<20+1),
		"random":    random,
		"text":      text,
		"mixed":     mixed,
		"block+1":   append(bytes.Repeat([]byte("ab"), 128<<10), 'c'),
		"vma-fixed": readVMAFixture(),
	}
}

// readVMAFixture returns the uncompressed v01 archive when it is there, so
// the command-line tests also see real archive bytes.
func readVMAFixture() []byte {
	b, _ := os.ReadFile("../../testdata/vectors/v01-single.vma")
	return b
}

// TestLzopCommand decompresses what the lzop command makes of each input
// with each option set vzdump or a user could plausibly use.
func TestLzopCommand(t *testing.T) {
	bin := lzopBinary(t)
	options := [][]string{
		{},     // vzdump's choice: -3, adler32 of the data
		{"-1"}, // LZO1X-1(15)
		{"-9"}, // LZO1X-999
		{"-F"}, // no checksums at all
		{"-1", "-F"},
		{"--crc32"}, // crc32 header and data checksums
		{"--crc32", "-9"},
		{"--crc32", "-F"},
		{"-CC"}, // adler32 of the compressed data too
		{"-CC", "-9"},
		{"-CC", "--crc32"}, // crc32 of both
	}
	dir := t.TempDir()
	for name, data := range lzopInputs() {
		if name == "vma-fixed" && len(data) == 0 {
			continue
		}
		src := filepath.Join(dir, "input")
		if err := os.WriteFile(src, data, 0o644); err != nil {
			t.Fatal(err)
		}
		for i, opts := range options {
			sources := []bool{false}
			if i < 2 {
				// A named file changes only the header, so two
				// option sets are enough to cover it.
				sources = append(sources, true)
			}
			for _, viaFile := range sources {
				label := fmt.Sprintf("%s/%s", name, strings.Join(opts, " "))
				args := append([]string{"-c"}, opts...)
				var cmd *exec.Cmd
				if viaFile {
					// The header then carries the file name (and path with -P).
					label += "/file"
					cmd = exec.Command(bin, append(args, "-P", src)...)
				} else {
					cmd = exec.Command(bin, args...)
					cmd.Stdin = bytes.NewReader(data)
				}
				compressed, err := cmd.Output()
				if err != nil {
					t.Fatalf("%s: lzop: %v", label, err)
				}
				t.Run(label, func(t *testing.T) {
					got, err := lzopDecode(compressed)
					if err != nil {
						t.Fatalf("flags 0x%08x: %v", binary.BigEndian.Uint32(compressed[17:]), err)
					}
					if !bytes.Equal(got, data) {
						t.Fatalf("decompressed %d bytes differ from the %d input bytes", len(got), len(data))
					}
					got, err = lzopDecodeWriteTo(compressed)
					if err != nil || !bytes.Equal(got, data) {
						t.Fatalf("WriteTo: %d bytes, %v", len(got), err)
					}
				})
			}
		}
	}
}

// TestLzopCommandFilter checks that lzop --filter, which this reader does
// not implement, is refused by name rather than decoded wrongly.
func TestLzopCommandFilter(t *testing.T) {
	bin := lzopBinary(t)
	cmd := exec.Command(bin, "-c", "--filter=1")
	cmd.Stdin = strings.NewReader(strings.Repeat("filtered ", 1000))
	compressed, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	_, err = newLzopReader(bytes.NewReader(compressed), 2)
	if !errors.Is(err, ErrLzopUnsupported) || !strings.Contains(err.Error(), "filter 1") {
		t.Fatalf("error = %v, want ErrLzopUnsupported naming filter 1", err)
	}
}

// TestLzopCommandCorrupt flips a byte inside a compressed block of a
// stream with checksums of the compressed data: the reader must report
// the checksum, and never hand the bad block to the decompressor.
func TestLzopCommandCorrupt(t *testing.T) {
	bin := lzopBinary(t)
	for _, opt := range []string{"-CC", "--crc32"} {
		cmd := exec.Command(bin, "-c", opt)
		cmd.Stdin = bytes.NewReader(lzopInputs()["text"])
		compressed, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		// Past the header and the first block header, inside its data.
		bad := bytes.Clone(compressed)
		bad[len(bad)/2] ^= 0x40
		_, err = lzopDecode(bad)
		if !errors.Is(err, ErrLzopChecksum) || !strings.Contains(err.Error(), "block at offset 0x") {
			t.Errorf("%s: error = %v, want ErrLzopChecksum naming the block offset", opt, err)
		}
	}
}

// lzopSpec describes a stream to build by hand, for the header variants
// and corruptions lzop never writes.
type lzopSpec struct {
	version      uint16 // 0 means 0x1040
	needed       uint16 // 0 means 0x0940
	method       byte   // 0 means 1
	flags        uint32
	filter       uint32
	name         string
	extra        []byte // written when flags has lzopExtraField
	headerSumXor uint32 // corrupts the header checksum
	blocks       []lzopTestBlock
	noEnd        bool // leave out the end marker
}

type lzopTestBlock struct {
	data []byte // uncompressed
	lzo  []byte // LZO1X encoding of data; nil stores data verbatim
}

func (s lzopSpec) build() []byte {
	if s.version == 0 {
		s.version = 0x1040
	}
	if s.needed == 0 {
		s.needed = 0x0940
	}
	if s.method == 0 {
		s.method = 1
	}
	be := binary.BigEndian
	var h []byte
	h = be.AppendUint16(h, s.version)
	h = be.AppendUint16(h, 0x20a0)
	newHeader := s.version >= 0x0940
	if newHeader {
		h = be.AppendUint16(h, s.needed)
	}
	h = append(h, s.method)
	if newHeader {
		h = append(h, 5)
	}
	h = be.AppendUint32(h, s.flags)
	if s.flags&lzopFilter != 0 {
		h = be.AppendUint32(h, s.filter)
	}
	h = be.AppendUint32(h, 0o100644)
	h = be.AppendUint32(h, 1700000000)
	if newHeader {
		h = be.AppendUint32(h, 0)
	}
	h = append(h, byte(len(s.name)))
	h = append(h, s.name...)
	sum, _ := lzopChecksum(s.flags, h)
	out := append(lzopMagic[:], h...)
	out = be.AppendUint32(out, sum^s.headerSumXor)
	if s.flags&lzopExtraField != 0 {
		x := be.AppendUint32(nil, uint32(len(s.extra)))
		x = append(x, s.extra...)
		sum, _ := lzopChecksum(s.flags, x)
		out = append(out, x...)
		out = be.AppendUint32(out, sum)
	}
	for _, b := range s.blocks {
		payload := b.data
		if b.lzo != nil {
			payload = b.lzo
		}
		out = be.AppendUint32(out, uint32(len(b.data)))
		out = be.AppendUint32(out, uint32(len(payload)))
		if s.flags&lzopAdler32D != 0 {
			out = be.AppendUint32(out, adler32.Checksum(b.data))
		}
		if s.flags&lzopCRC32D != 0 {
			out = be.AppendUint32(out, crc32.ChecksumIEEE(b.data))
		}
		if b.lzo != nil {
			if s.flags&lzopAdler32C != 0 {
				out = be.AppendUint32(out, adler32.Checksum(b.lzo))
			}
			if s.flags&lzopCRC32C != 0 {
				out = be.AppendUint32(out, crc32.ChecksumIEEE(b.lzo))
			}
		}
		out = append(out, payload...)
	}
	if !s.noEnd {
		out = be.AppendUint32(out, 0)
	}
	return out
}

// lzoRun is a hand-made LZO1X stream for 37 copies of c: a 4-byte literal
// run, one M3 match of 33 bytes at distance 1, and the end marker. It
// lets tests build compressed blocks without the lzop command.
func lzoRun(c byte) lzopTestBlock {
	return lzopTestBlock{
		data: bytes.Repeat([]byte{c}, 37),
		lzo:  []byte{17 + 4, c, c, c, c, 0x20 | 31, 0, 0, 0x11, 0, 0},
	}
}

func TestLzopCrafted(t *testing.T) {
	stored := lzopTestBlock{data: []byte("stored verbatim, as lzop does when LZO would expand it")}
	all := append(append(bytes.Repeat(lzoRun('x').data, 2), stored.data...), lzoRun('y').data...)
	blocks := []lzopTestBlock{lzoRun('x'), lzoRun('x'), stored, lzoRun('y')}
	tests := []struct {
		name string
		spec lzopSpec
	}{
		{"no checksums", lzopSpec{}},
		{"adler32", lzopSpec{flags: lzopAdler32D | lzopAdler32C}},
		{"crc32", lzopSpec{flags: lzopCRC32D | lzopCRC32C | lzopHeaderCRC32}},
		{"all four", lzopSpec{flags: lzopAdler32D | lzopAdler32C | lzopCRC32D | lzopCRC32C}},
		{"name", lzopSpec{name: strings.Repeat("n", 255), flags: lzopAdler32D}},
		{"extra field", lzopSpec{flags: lzopAdler32D | lzopExtraField, extra: []byte("ignored")}},
		{"extra field crc32", lzopSpec{flags: lzopHeaderCRC32 | lzopExtraField, extra: []byte("x")}},
		{"empty extra field", lzopSpec{flags: lzopExtraField}},
		{"filter 0", lzopSpec{flags: lzopFilter}},
		{"old header", lzopSpec{version: 0x0930, flags: lzopAdler32D}},
		{"method 3", lzopSpec{method: 3}},
		{"OS and charset bits", lzopSpec{flags: 0x03500000 | lzopAdler32D}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.blocks = blocks
			got, err := lzopDecode(tt.spec.build())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, all) {
				t.Fatalf("got %q, want %q", got, all)
			}
		})
	}
}

// TestLzopCraftedCommand feeds the hand-built streams to the lzop command:
// it accepting them shows the test's builder, and so the reader that
// agrees with it, follow lzop's reading of the format (old headers, extra
// fields, which checksums cover what).
func TestLzopCraftedCommand(t *testing.T) {
	bin := lzopBinary(t)
	blocks := []lzopTestBlock{lzoRun('x'), {data: []byte("stored")}, lzoRun('y')}
	want := slices.Concat(blocks[0].data, blocks[1].data, blocks[2].data)
	for _, s := range []lzopSpec{
		{flags: lzopAdler32D | lzopAdler32C},
		{flags: lzopCRC32D | lzopCRC32C | lzopHeaderCRC32},
		{flags: lzopAdler32D | lzopAdler32C | lzopCRC32D | lzopCRC32C},
		{flags: lzopAdler32D | lzopExtraField, extra: []byte("ignored")},
		{flags: lzopCRC32D | lzopHeaderCRC32 | lzopExtraField, extra: []byte("x")},
		{flags: lzopFilter},
		{version: 0x0930, flags: lzopAdler32D},
		{method: 3, name: "disk.vma"},
	} {
		s.blocks = blocks
		cmd := exec.Command(bin, "-dc")
		cmd.Stdin = bytes.NewReader(s.build())
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		got, err := cmd.Output()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("flags 0x%x, version 0x%x: lzop -d: %v %s; got %q", s.flags, s.version, err, stderr.Bytes(), got)
		}
	}
}

func TestLzopEmpty(t *testing.T) {
	got, err := lzopDecode(lzopSpec{flags: lzopAdler32D}.build())
	if err != nil || len(got) != 0 {
		t.Fatalf("got %d bytes, %v; want an empty stream", len(got), err)
	}
}

// TestLzopErrors checks each way a stream can be refused: the kind for
// errors.Is, and a message that names the place.
func TestLzopErrors(t *testing.T) {
	be := binary.BigEndian
	block := lzoRun('z')
	good := lzopSpec{flags: lzopAdler32D | lzopAdler32C, blocks: []lzopTestBlock{block}}
	hdrLen := len(lzopSpec{flags: good.flags}.build()) - 4 // without the end marker

	// withBlock replaces the block after the header with raw bytes.
	withBlock := func(raw ...[]byte) []byte {
		b := lzopSpec{flags: good.flags}.build()[:hdrLen]
		for _, r := range raw {
			b = append(b, r...)
		}
		return b
	}
	u32 := func(v uint32) []byte { return be.AppendUint32(nil, v) }
	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 1; return b }
	goodBytes := good.build()

	tests := []struct {
		name string
		in   []byte
		kind error
		msg  string
	}{
		{"empty input", nil, io.ErrUnexpectedEOF, "header at offset 0x0"},
		{"bad magic", []byte("\x89LZX\x00\r\n\x1a\nxxxxxxxxxxxxxxxxxxxxxxx"), ErrLzopFormat, "bad magic"},
		{"gzip", []byte("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"), ErrLzopFormat, "bad magic"},
		{"header checksum", lzopSpec{headerSumXor: 1}.build(), ErrLzopChecksum, "adler32 of the header"},
		{"header crc32", lzopSpec{flags: lzopHeaderCRC32, headerSumXor: 1}.build(), ErrLzopChecksum, "crc32 of the header"},
		{"method zlib", lzopSpec{method: 128}.build(), ErrLzopUnsupported, "method 128"},
		{"filter", lzopSpec{flags: lzopFilter, filter: 3}.build(), ErrLzopUnsupported, "filter 3"},
		{"unknown flag", lzopSpec{flags: 0x00004000}.build(), ErrLzopUnsupported, "unknown flags 0x00004000"},
		{"newer version", lzopSpec{needed: 0x2000}.build(), ErrLzopUnsupported, "needs lzop 2.000"},
		{"ancient version", lzopSpec{version: 0x0800}.build(), ErrLzopFormat, "version 0x0800"},
		{"bad version needed", lzopSpec{needed: 0x0100}.build(), ErrLzopFormat, "version needed"},
		{"huge block", withBlock(u32(0x7fffffff), u32(100)), ErrLzopFormat, "uncompressed size 2147483647 exceeds"},
		{"split file", withBlock(u32(0xffffffff)), ErrLzopFormat, "exceeds"},
		{"just over 256 KiB", withBlock(u32(256<<10+1), u32(256<<10+1)), ErrLzopFormat,
			fmt.Sprintf("block at offset 0x%x: malformed stream: uncompressed size 262145 exceeds lzop's block size of 262144", hdrLen)},
		{"64 MiB, lzop's sanity bound", withBlock(u32(64<<20), u32(256<<10)), ErrLzopFormat, "uncompressed size 67108864 exceeds"},
		{"compressed > uncompressed", withBlock(u32(10), u32(11), u32(0), u32(0)), ErrLzopFormat, "compressed size 11"},
		{"compressed size 0", withBlock(u32(10), u32(0), u32(0), u32(0)), ErrLzopFormat, "compressed size 0"},
		{"impossible ratio", withBlock(u32(256<<10), u32(1000), u32(0), u32(0)), ErrLzopFormat, "cannot expand 1000 bytes to 262144"},
		{"no end marker", lzopSpec{flags: good.flags, blocks: good.blocks, noEnd: true}.build(), io.ErrUnexpectedEOF,
			fmt.Sprintf("block at offset 0x%x", len(goodBytes)-4)},
		{"compressed data flipped", flip(goodBytes, len(goodBytes)-4-2), ErrLzopChecksum,
			fmt.Sprintf("block at offset 0x%x: checksum mismatch: adler32 of the compressed data", hdrLen)},
		{"data checksum flipped", flip(goodBytes, hdrLen+8), ErrLzopChecksum, "adler32 of the uncompressed data"},
		{"stored data flipped", flip(lzopSpec{flags: lzopCRC32D, blocks: []lzopTestBlock{{data: []byte("abc")}}}.build(),
			hdrLen+12), ErrLzopChecksum, "crc32 of the uncompressed data"},
		{"undecodable", lzopSpec{blocks: []lzopTestBlock{{data: block.data, lzo: []byte{17 + 4, 1, 2, 3, 4, 0x20 | 31, 0xff, 0xff, 0x11, 0, 0}}}}.build(),
			ErrLzopFormat, "does not decode"},
		{"decodes short", lzopSpec{blocks: []lzopTestBlock{{data: append(block.data, 'z'), lzo: block.lzo}}}.build(),
			ErrLzopFormat, "decodes to 37 bytes, the block header says 38"},
		{"extra field checksum", flip(lzopSpec{flags: lzopExtraField, extra: []byte("abc")}.build(), hdrLen+4),
			ErrLzopChecksum, "extra field at offset"},
		{"extra field truncated", lzopSpec{flags: lzopExtraField, extra: []byte("abc")}.build()[:hdrLen+5],
			io.ErrUnexpectedEOF, "extra field at offset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := lzopDecode(tt.in)
			if !errors.Is(err, tt.kind) {
				t.Fatalf("error = %v, want %v", err, tt.kind)
			}
			if !strings.HasPrefix(err.Error(), "lzop: ") || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error = %q, want it to contain %q", err, tt.msg)
			}
		})
	}
}

// TestLzopTruncated cuts a crafted stream at every byte, and the fixture
// around every block boundary and inside every block: each cut must be
// io.ErrUnexpectedEOF with an offset, never a clean end or another kind.
func TestLzopTruncated(t *testing.T) {
	crafted := lzopSpec{
		flags:  lzopAdler32D | lzopCRC32C | lzopExtraField,
		name:   "disk.vma",
		extra:  []byte("extra"),
		blocks: []lzopTestBlock{lzoRun('a'), {data: []byte("stored")}, lzoRun('b')},
	}.build()
	for n := range len(crafted) {
		if _, err := lzopDecode(crafted[:n]); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("crafted stream cut at %d of %d: error = %v, want unexpected EOF", n, len(crafted), err)
		}
	}

	fixture := readLzopFixture(t)
	var cuts []int
	for n := range 64 { // magic and header
		cuts = append(cuts, n)
	}
	for _, b := range lzopBlockOffsets(t, fixture) {
		for d := -1; d < 16; d++ { // block header fields
			cuts = append(cuts, b+d)
		}
		cuts = append(cuts, b+1000) // inside the data
	}
	for _, n := range cuts {
		if n < 0 || n >= len(fixture) {
			continue
		}
		_, err := lzopDecode(fixture[:n])
		if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "at offset 0x") {
			t.Fatalf("fixture cut at %d: error = %v, want unexpected EOF with an offset", n, err)
		}
	}
}

// lzopBlockOffsets returns where each block of a valid stream starts, the
// end marker last.
func lzopBlockOffsets(t *testing.T, b []byte) []int {
	t.Helper()
	z := &lzopReader{r: bytes.NewReader(b)}
	if err := z.readHeader(); err != nil {
		t.Fatal(err)
	}
	var offs []int
	var blk lzopBlock
	for {
		offs = append(offs, int(z.off))
		err := z.readBlock(&blk)
		if err == nil {
			err = blk.decode()
		}
		if err == io.EOF {
			return offs
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestLzopFixtureFlips flips bytes all through the fixture: the single
// adler32 per block must catch every change the decoder does not, so no
// corrupted stream may decode without an error.
func TestLzopFixtureFlips(t *testing.T) {
	fixture := readLzopFixture(t)
	step := 797
	if testing.Short() {
		step = 3989
	}
	for i := 0; i < len(fixture); i += step {
		bad := bytes.Clone(fixture)
		bad[i] ^= 0x10
		_, err := lzopDecode(bad)
		if err == nil {
			t.Fatalf("byte %d flipped: decoded without error", i)
		}
		if !errors.Is(err, ErrLzopChecksum) && !errors.Is(err, ErrLzopFormat) && !errors.Is(err, io.ErrUnexpectedEOF) &&
			!errors.Is(err, ErrLzopUnsupported) {
			t.Fatalf("byte %d flipped: error %v is of no lzop kind", i, err)
		}
	}
}

// TestLzopAllocation checks what blocks cost: a tiny stream that claims
// a block of lzop's full size with most of its data missing, and one that
// claims 64 MiB (refused before anything is allocated for it).
func TestLzopAllocation(t *testing.T) {
	head := lzopSpec{flags: lzopAdler32D}.build()
	head = head[:len(head)-4]
	for _, tt := range []struct {
		size uint32
		kind error
	}{
		{lzopMaxBlockSize, io.ErrUnexpectedEOF},
		{64 << 20, ErrLzopFormat},
	} {
		s := binary.BigEndian.AppendUint32(bytes.Clone(head), tt.size) // stored block: sizes equal
		s = binary.BigEndian.AppendUint32(s, tt.size)
		s = binary.BigEndian.AppendUint32(s, 0)
		s = append(s, make([]byte, 1000)...)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := lzopDecode(s)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, tt.kind) {
			t.Fatalf("block of %d: error = %v, want %v", tt.size, err, tt.kind)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > lzopMaxBlockSize+64<<10 {
			t.Errorf("block of %d: a 1 KB stream made the reader allocate %d bytes", tt.size, grew)
		}
	}
}

// BenchmarkLzopReader decompresses ~4.4 MiB: the fixture's blocks
// repeated eight times under its header, so it needs no lzop command.
func BenchmarkLzopReader(b *testing.B) {
	fixture := readLzopFixture(b)
	z := &lzopReader{r: bytes.NewReader(fixture)}
	if err := z.readHeader(); err != nil {
		b.Fatal(err)
	}
	hdrLen := z.off
	body := fixture[hdrLen : len(fixture)-4]
	in := slices.Concat(fixture[:hdrLen], bytes.Repeat(body, 8), fixture[len(fixture)-4:])
	out, err := lzopDecode(in)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	r := bytes.NewReader(in)
	for b.Loop() {
		r.Reset(in)
		z, err := newLzopReader(r, 2)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, z); err != nil {
			b.Fatal(err)
		}
	}
}
