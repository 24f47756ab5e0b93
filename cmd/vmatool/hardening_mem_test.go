package main

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"hash/adler32"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// The tests in this file hold vmatool to its memory promise (peak RSS at
// or under 64 MiB) on inputs whose headers claim far more than they hold:
// archives that touch clusters all over huge devices, zstd frames that ask
// for huge windows, lzop blocks that claim huge sizes. Every input is made
// here, small, in a temporary directory.

var memUUID = [16]byte{0x6d, 0x65, 0x6d, 0x2d, 0x74, 0x65, 0x73, 0x74, 1, 2, 3, 4, 5, 6, 7, 8}

// memHeader builds a VMA header by hand (vma-format.md §2): one config and
// a device of each given size, named drive-scsi<N>. It does what the
// package's writer would refuse to, so the tests depend on no vma code.
func memHeader(sizes []int64) []byte {
	blob := []byte{0} // byte 0 of the blob buffer is never used
	add := func(data []byte) uint32 {
		p := uint32(len(blob))
		blob = binary.LittleEndian.AppendUint16(blob, uint16(len(data)))
		blob = append(blob, data...)
		return p
	}
	fixed := make([]byte, 12288)
	be := binary.BigEndian
	be.PutUint32(fixed[2044:], add([]byte("qemu-server.conf\x00")))
	be.PutUint32(fixed[3068:], add([]byte("memory: 512\n")))
	for i, s := range sizes {
		slot := fixed[4096+32*(i+1):]
		be.PutUint32(slot, add(fmt.Appendf(nil, "drive-scsi%d\x00", i)))
		be.PutUint64(slot[8:], uint64(s))
	}
	size := 12288 + (len(blob)+511)/512*512
	b := make([]byte, size)
	copy(b, fixed)
	copy(b, "VMA\x00")
	be.PutUint32(b[4:], 1)
	copy(b[8:], memUUID[:])
	be.PutUint64(b[24:], 1700000000)
	be.PutUint32(b[48:], 12288)
	be.PutUint32(b[52:], uint32(len(blob)))
	be.PutUint32(b[56:], uint32(size))
	copy(b[12288:], blob)
	sum := md5.Sum(b)
	copy(b[32:], sum[:])
	return b
}

// memSlot is one cluster an extent records, always with mask 0 (a cluster
// of zeros): the archive spends 8 bytes on it and no data.
type memSlot struct {
	dev     uint8
	cluster uint32
}

// memExtent builds one 512-byte extent header for up to 59 mask-0 slots.
func memExtent(slots []memSlot) []byte {
	b := make([]byte, 512)
	copy(b, "VMAE")
	copy(b[8:], memUUID[:])
	for i, s := range slots {
		binary.BigEndian.PutUint64(b[40+8*i:], uint64(s.dev)<<32|uint64(s.cluster))
	}
	sum := md5.Sum(b)
	copy(b[24:], sum[:])
	return b
}

// memArchive is a header for sizes followed by extents of 59 slots each.
func memArchive(sizes []int64, slots []memSlot) []byte {
	out := memHeader(sizes)
	for len(slots) > 0 {
		n := min(len(slots), 59)
		out = append(out, memExtent(slots[:n])...)
		slots = slots[n:]
	}
	return out
}

// assertOneError checks a refusal: exit status 1 and a single stderr line
// that contains every one of want.
func assertOneError(t *testing.T, r result, want ...string) {
	t.Helper()
	if r.code != 1 {
		t.Errorf("exit %d, want 1; stderr: %s", r.code, r.stderr)
	}
	if lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n"); len(lines) != 1 {
		t.Errorf("stderr has %d lines, want one:\n%s", len(lines), r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr %q lacks %q", r.stderr, w)
		}
	}
}

// logRSS records the peak, so the numbers can be compared across changes
// with go test -v.
func logRSS(t *testing.T, what string, r result) {
	t.Helper()
	t.Logf("%s: exit %d, peak RSS %.1f MiB", what, r.code, float64(r.maxRSS)/(1<<20))
}

// readingCommands runs each command that reads a whole archive against
// path, expecting the same refusal from each, and checks that unpack and
// extract leave nothing behind.
func readingCommands(t *testing.T, path string, want ...string) {
	t.Helper()
	for _, args := range [][]string{
		{"verify", "-q", path},
		{"list", "--json", path},
		{"info", "--json", path},
		{"unpack", "-q", path, "OUT"},
		{"extract", path, "OUT"},
	} {
		args := append([]string(nil), args...)
		out := filepath.Join(t.TempDir(), "out")
		if args[len(args)-1] == "OUT" {
			args[len(args)-1] = out
		}
		r := vmatool(t, nil, nil, args...)
		logRSS(t, args[0], r)
		assertOneError(t, r, want...)
		r.assertRSS(t)
		assertGone(t, out)
	}
}

// TestHostileClusterSpread: archives whose extents touch clusters all over
// huge devices. Each cluster costs the archive 8 bytes; what the reader
// keeps to check completeness and duplicates must follow those bytes, not
// the device sizes the header claims.
func TestHostileClusterSpread(t *testing.T) {
	// 8 TiB devices: every range of 65536 clusters (4 GiB) of each one
	// can be touched, and unpack can still size its outputs on ext4.
	const devSize = 8 << 40
	const clusters = 59 * 1500 // 768 KiB of extent headers
	rng := rand.New(rand.NewPCG(1, 2))
	patterns := []struct {
		name  string
		devs  int
		slots func(i int) memSlot
	}{
		// One cluster in each 4 GiB range of 254 devices: a bitmap page
		// per range was 8 KiB for 8 bytes of archive.
		{"a cluster per range on 254 devices", 254, func(i int) memSlot {
			return memSlot{uint8(i%254 + 1), uint32(i/254) << 16}
		}},
		// Every other cluster: no two runs coalesce.
		{"every other cluster", 1, func(i int) memSlot { return memSlot{1, uint32(2 * i)} }},
		// Isolated clusters in random order all over one device.
		{"random clusters", 1, func(int) memSlot { return memSlot{1, rng.Uint32N(devSize >> 16)} }},
	}
	for _, p := range patterns {
		t.Run(p.name, func(t *testing.T) {
			sizes := make([]int64, p.devs)
			for i := range sizes {
				sizes[i] = devSize
			}
			slots := make([]memSlot, 0, clusters)
			seen := map[memSlot]bool{}
			for i := 0; len(slots) < clusters; i++ {
				if s := p.slots(i); !seen[s] {
					seen[s] = true
					slots = append(slots, s)
				}
			}
			path := writeFile(t, filepath.Join(t.TempDir(), "spread.vma"), memArchive(sizes, slots))
			readingCommands(t, path, "missing cluster", "the first is cluster")
		})
	}
}

// TestHostileDuplicateFarOut: a duplicate is still found, and named at its
// extent, when the two copies lie far apart on a huge device.
func TestHostileDuplicateFarOut(t *testing.T) {
	slots := []memSlot{{1, 1 << 31}, {1, 5}, {1, 0xffffffff}, {1, 7}}
	for i := range 4*59 - len(slots) { // four full extents
		slots = append(slots, memSlot{1, uint32(i*1000003 + 11)})
	}
	slots = append(slots, memSlot{1, 0xffffffff})
	b := memArchive([]int64{1 << 48}, slots)
	path := writeFile(t, filepath.Join(t.TempDir(), "dup.vma"), b)
	last := len(b) - 512 // the duplicate is the last extent's only slot
	r := vmatool(t, nil, nil, "verify", "-q", path)
	assertOneError(t, r, "duplicated cluster", "cluster 4294967295 of drive-scsi0 appears twice",
		fmt.Sprintf("at offset %d ", last+40))
	r.assertRSS(t)
}

// memImageArchive packs a small image of mixed data and returns the
// archive and the image.
func memImageArchive(t *testing.T, dir string) (archive, image string) {
	t.Helper()
	b := make([]byte, 6<<20)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < len(b); i += 4096 {
		switch i / 4096 % 3 {
		case 0: // incompressible
			for j := i; j < i+4096; j += 8 {
				binary.LittleEndian.PutUint64(b[j:], rng.Uint64())
			}
		case 1: // text-like
			copy(b[i:i+4096], bytes.Repeat([]byte(fmt.Sprintf("block %d ", i)), 400))
		}
	}
	image = writeFile(t, filepath.Join(dir, "disk.raw"), b)
	archive = filepath.Join(dir, "a.vma")
	runInProcess(t, nil, nil, "pack", "-q", "-o", archive, image).mustSucceed(t)
	return archive, image
}

// runTool runs an outside command with stdin from a file and stdout to a
// file.
func runTool(t *testing.T, in, out string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	o, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = f, o, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, stderr.Bytes())
	}
}

// assertUnpacks checks that the archive at path reads whole and that its
// disk comes out as image, with nothing on stderr.
func assertUnpacks(t *testing.T, path, image string, extra ...string) {
	t.Helper()
	r := vmatool(t, nil, nil, append([]string{"verify", "-q"}, append(extra, path)...)...).mustSucceed(t)
	if r.stderr != "" {
		t.Errorf("verify printed %q", r.stderr)
	}
	logRSS(t, "verify", r)
	out := filepath.Join(t.TempDir(), "out")
	r = vmatool(t, nil, nil, append([]string{"unpack", "-q"}, append(extra, path, out)...)...).mustSucceed(t)
	if r.stderr != "" {
		t.Errorf("unpack printed %q", r.stderr)
	}
	if got, want := fileSHA(t, filepath.Join(out, "disk-drive-scsi0.raw")), fileSHA(t, image); got != want {
		t.Errorf("unpacked disk differs from the image")
	}
}

// TestZstdLargeWindow: an archive compressed with zstd --long=27 asks the
// decoder for a 128 MiB window. It is refused by default, with one line
// that names the window and the option, and read when --max-window allows.
func TestZstdLargeWindow(t *testing.T) {
	zstdBin := requireTool(t, "zstd")
	dir := t.TempDir()
	archive, image := memImageArchive(t, dir)
	path := filepath.Join(dir, "a.vma.zst")
	// From standard input zstd cannot shrink the window to the input size,
	// so the frame declares the full 128 MiB, as for a large disk.
	runTool(t, archive, path, zstdBin, "-q", "--long=27", "-c")
	readingCommands(t, path, "zstd", "needs a window of 128 MiB", "limit of 8 MiB", "--max-window 128M")

	r := runInProcess(t, nil, nil, "config", path)
	assertOneError(t, r, "window of 128 MiB", "--max-window 128M")
	runInProcess(t, nil, nil, "config", "--max-window", "128M", path).mustSucceed(t)
	// deploy looks into the archive to tell it from an image.
	deploy := []string{"deploy", "--host", "pve.invalid", "--vmid", "100", "--dry-run", path}
	r = runInProcess(t, nil, nil, deploy...)
	assertOneError(t, r, "window of 128 MiB", "--max-window 128M")
	runInProcess(t, nil, nil, append(deploy, "--max-window", "128M")...).mustSucceed(t)

	// Reading a 128 MiB window takes memory to match; only success is
	// asserted.
	assertUnpacks(t, path, image, "--max-window", "128M")
	runInProcess(t, nil, nil, "list", "--json", "--max-window", "128MiB", path).mustSucceed(t)

	if r := runInProcess(t, nil, nil, "verify", "--max-window", "12x", path); r.code != 2 {
		t.Errorf("--max-window 12x: exit %d, want 2 (usage); stderr %q", r.code, r.stderr)
	}
}

// zstdFramesOf compresses b with the library's streaming encoder: frames
// that do not declare their size, so they carry a window descriptor.
func zstdFramesOf(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	enc, err := zstd.NewWriter(&out, zstd.WithWindowSize(1<<20), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	if out.Bytes()[4]&0x20 != 0 {
		t.Fatal("the encoder wrote a single-segment frame, which has no window descriptor")
	}
	return out.Bytes()
}

// memDataArchive writes, zstd-compressed, an archive of one device of
// size bytes, every block stored, each block a repeated 8-byte pattern:
// tiny when compressed, size bytes to decode. The frame's window
// descriptor is then set to 1<<windowLog by hand (a larger window changes
// nothing else about how a frame decodes), so a decoder that allows it
// fills that much history.
func memDataArchive(t *testing.T, path string, size int64, windowLog byte) {
	t.Helper()
	var out bytes.Buffer
	enc, err := zstd.NewWriter(&out, zstd.WithWindowSize(1<<20), zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	enc.Write(memHeader([]int64{size}))
	block := make([]byte, 4096)
	for c := int64(0); c < size>>16; c += 59 {
		n := min(size>>16-c, 59)
		eh := make([]byte, 512)
		copy(eh, "VMAE")
		binary.BigEndian.PutUint16(eh[6:], uint16(16*n))
		copy(eh[8:], memUUID[:])
		for i := range n {
			binary.BigEndian.PutUint64(eh[40+8*i:], 0xffff<<48|1<<32|uint64(c+i))
		}
		sum := md5.Sum(eh)
		copy(eh[24:], sum[:])
		enc.Write(eh)
		for b := c * 16; b < (c+n)*16; b++ {
			for i := 0; i < len(block); i += 8 {
				binary.LittleEndian.PutUint64(block[i:], uint64(b)|1<<63)
			}
			enc.Write(block)
		}
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	z := out.Bytes()
	if z[4]&0x20 != 0 {
		t.Fatal("the encoder wrote a single-segment frame, which has no window descriptor")
	}
	z[5] = (windowLog - 10) << 3 // Window_Descriptor: exponent, mantissa 0
	writeFile(t, path, z)
}

// TestZstdCraftedWindow: frames that claim windows of 128 and 256 MiB
// (window logs 27 and 28) over 160 MiB of archive are refused by default,
// before the decoder fills a window: decoding them took 140 and 170 MiB.
func TestZstdCraftedWindow(t *testing.T) {
	for _, log := range []byte{27, 28} {
		t.Run(fmt.Sprint("window log ", log), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a.vma.zst")
			memDataArchive(t, path, 160<<20, log)
			mib := 1 << (log - 20)
			readingCommands(t, path, fmt.Sprintf("window of %d MiB", mib), fmt.Sprintf("--max-window %dM", mib))
		})
	}
}

// skippableFrame is a zstd skippable frame (magic 0x184D2A5?) holding
// payload, as pzstd writes before each frame and other tools use for
// metadata.
func skippableFrame(nibble byte, payload []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 0x184D2A50|uint32(nibble))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

// TestZstdSkippableFrames: a stream that starts with a skippable frame is
// zstd, and its skippable frames, wherever they are, are read through.
func TestZstdSkippableFrames(t *testing.T) {
	dir := t.TempDir()
	archive, image := memImageArchive(t, dir)
	b, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	half := len(b) / 2
	crafted := bytes.Join([][]byte{
		skippableFrame(0xa, []byte("metadata a tool left here")),
		zstdFramesOf(t, b[:half]),
		skippableFrame(0x0, nil),
		skippableFrame(0xf, bytes.Repeat([]byte{0xee}, 100000)),
		zstdFramesOf(t, b[half:]),
		skippableFrame(0x5, []byte("trailer")),
	}, nil)
	path := writeFile(t, filepath.Join(dir, "crafted.vma.zst"), crafted)
	assertUnpacks(t, path, image)
	r := runInProcess(t, nil, nil, "list", "--json", path).mustSucceed(t)
	if !strings.Contains(r.stdout, `"compression": "zstd"`) {
		t.Errorf("list --json does not say zstd:\n%s", r.stdout)
	}

	// A skippable frame that claims more bytes than follow is a
	// truncated stream.
	cut := append(zstdFramesOf(t, b), skippableFrame(0x1, make([]byte, 10))[:12]...)
	path = writeFile(t, filepath.Join(dir, "cut.vma.zst"), cut)
	r = runInProcess(t, nil, nil, "verify", "-q", path)
	assertOneError(t, r, "truncated")

	t.Run("pzstd", func(t *testing.T) {
		pzstd := requireTool(t, "pzstd")
		path := filepath.Join(dir, "p.vma.zst")
		runTool(t, archive, path, pzstd, "-q", "-p", "2", "-c")
		if got, _ := os.ReadFile(path); len(got) < 4 || binary.LittleEndian.Uint32(got)&^0xf != 0x184D2A50 {
			t.Fatal("pzstd output does not start with a skippable frame")
		}
		assertUnpacks(t, path, image)
	})
}

// lzopHostile builds an lzop stream (no checksums) of one block that
// claims 64 MiB, lzop's MAX_BLOCK_SIZE, with about 258 KiB of LZO1X data
// that really decodes to 64 MiB of zeros: long M3 matches at distance 1.
func lzopHostile() []byte {
	const want = 64 << 20
	be := binary.BigEndian
	h := be.AppendUint16(nil, 0x1040)  // version
	h = be.AppendUint16(h, 0x20a0)     // library version
	h = be.AppendUint16(h, 0x0940)     // version needed
	h = append(h, 1, 5)                // LZO1X-1, level 5
	h = be.AppendUint32(h, 0)          // flags: no checksums
	h = be.AppendUint32(h, 0o100644)   // mode
	h = be.AppendUint32(h, 1700000000) // mtime
	h = be.AppendUint32(h, 0)          // mtime high
	h = append(h, 0)                   // no name
	out := append([]byte("\x89LZO\x00\r\n\x1a\n"), h...)
	out = be.AppendUint32(out, adler32.Checksum(h))

	lzo := []byte{17 + 4, 0, 0, 0, 0} // 4 literal zeros
	n := 4
	for n < want {
		// M3 with a length of 33+255z+k: opcode 0x20, z zero bytes, k,
		// then the distance 1 as two bytes.
		z := min((want-n-33)/255, 1000)
		k := min(want-n-33-255*z, 255)
		if k == 0 && z > 0 {
			z, k = z-1, 255
		}
		lzo = append(lzo, 0x20)
		lzo = append(lzo, make([]byte, z)...)
		lzo = append(lzo, byte(k), 0, 0)
		n += 33 + 255*z + k
	}
	if n != want {
		panic(fmt.Sprintf("crafted LZO1X data decodes to %d bytes", n))
	}
	lzo = append(lzo, 0x11, 0, 0) // end of stream
	out = be.AppendUint32(out, uint32(n))
	out = be.AppendUint32(out, uint32(len(lzo)))
	out = append(out, lzo...)
	return be.AppendUint32(out, 0)
}

// TestLzopHostileBlock: a 258 KiB lzop file that claims a 64 MiB block is
// refused at the block, with its offset, before anything that size is
// allocated.
func TestLzopHostileBlock(t *testing.T) {
	b := lzopHostile()
	if len(b) > 300<<10 {
		t.Fatalf("crafted stream is %d bytes", len(b))
	}
	path := writeFile(t, filepath.Join(t.TempDir(), "hostile.vma.lzo"), b)
	readingCommands(t, path, "lzop", "block at offset 0x", "67108864")
}

// TestLzopRealArchive: what the lzop command writes, at its fastest and
// its best, still reads.
func TestLzopRealArchive(t *testing.T) {
	lzop := requireTool(t, "lzop")
	dir := t.TempDir()
	archive, image := memImageArchive(t, dir)
	for _, level := range []string{"-1", "-9"} {
		path := filepath.Join(dir, "a"+level+".vma.lzo")
		runTool(t, archive, path, lzop, level, "-c")
		assertUnpacks(t, path, image)
	}
}
