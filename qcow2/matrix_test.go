package qcow2_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmatool/vmatool/qcow2"
)

// matrixCase is one image of the qcow2-notes.md test matrix: the commands
// that make it (run in the test directory, "qemu-img" and "qemu-io"
// resolved from PATH) and what reading it must give.
type matrixCase struct {
	name     string
	cmds     [][]string
	dataFile string // passed to WithDataFile
	want     error  // the image must be refused with this
}

const (
	mKiB = 1 << 10
	mMiB = 1 << 20
)

// makeMatrixDisk writes the matrix input, a 32 MiB sparse raw disk:
//
//	0-4M    random
//	4-8M    hole
//	8-12M   compressible text
//	12-16M  written zeros
//	16-20M  4 KiB random every 64 KiB (at +8 KiB)
//	20-24M  512 B random every 3 KiB
//	24-32M  hole, except 4 KiB random at the very end
//
// plus odd.raw, the same with 4608 more bytes of text (an odd size).
func makeMatrixDisk(t *testing.T, dir string) {
	rng := rand.New(rand.NewPCG(3, 4))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	text := func(n int) []byte {
		var b []byte
		for i := 0; len(b) < n; i++ {
			b = fmt.Appendf(b, "%07d the quick brown fox jumps over the lazy dog %x\n", i, rng.Uint32()%64)
		}
		return b[:n]
	}
	type piece struct {
		off  int64
		data []byte
	}
	pieces := []piece{{0, random(4 * mMiB)}, {8 * mMiB, text(4 * mMiB)}, {12 * mMiB, make([]byte, 4*mMiB)}}
	for off := int64(16 * mMiB); off < 20*mMiB; off += 64 * mKiB {
		pieces = append(pieces, piece{off + 8*mKiB, random(4 * mKiB)})
	}
	for off := int64(20 * mMiB); off+512 <= 24*mMiB; off += 3 * mKiB {
		pieces = append(pieces, piece{off, random(512)})
	}
	pieces = append(pieces, piece{32*mMiB - 4*mKiB, random(4 * mKiB)})
	for _, name := range []string{"mixed.raw", "odd.raw"} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		size := int64(32 * mMiB)
		ps := pieces
		if name == "odd.raw" {
			size += 4608
			ps = append(ps[:len(ps):len(ps)], piece{32 * mMiB, text(4608)})
		}
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if _, err := f.WriteAt(p.data, p.off); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// matrixCases follows the command list of qcow2-notes.md, scaled to the
// 32 MiB disk (the qemu-io offsets land in the same kinds of region).
func matrixCases() []matrixCase {
	conv := func(out string, opts ...string) []string {
		return append(append([]string{"qemu-img", "convert", "-f", "raw", "-O", "qcow2"}, opts...), "mixed.raw", out)
	}
	qio := func(img string, cmds ...string) []string {
		args := []string{"qemu-io", "-f", "qcow2"}
		for _, c := range cmds {
			args = append(args, "-c", c)
		}
		return append(args, img)
	}
	one := func(name string, opts ...string) matrixCase {
		return matrixCase{name: name, cmds: [][]string{conv(name, opts...)}}
	}
	const secret = "secret,id=sec0,data=password"
	return []matrixCase{
		// versions and cluster sizes
		one("v2-compat010.qcow2", "-o", "compat=0.10"),
		one("v3-default-64k.qcow2"),
		one("v3-c512.qcow2", "-o", "cluster_size=512"),
		one("v3-c4k.qcow2", "-o", "cluster_size=4k"),
		one("v3-c2m.qcow2", "-o", "cluster_size=2M"),
		one("v2-c4k.qcow2", "-o", "compat=0.10,cluster_size=4k"),
		// compression
		one("zlib-64k.qcow2", "-c"),
		one("zlib-4k.qcow2", "-c", "-o", "cluster_size=4k"),
		one("zlib-2m.qcow2", "-c", "-o", "cluster_size=2M"),
		one("zlib-512.qcow2", "-c", "-o", "cluster_size=512"),
		one("zlib-v2.qcow2", "-c", "-o", "compat=0.10"),
		one("zstd-64k.qcow2", "-c", "-o", "compression_type=zstd"),
		one("zstd-4k.qcow2", "-c", "-o", "compression_type=zstd,cluster_size=4k"),
		one("zstd-2m.qcow2", "-c", "-o", "compression_type=zstd,cluster_size=2M"),
		// extended L2
		one("extl2-64k.qcow2", "-o", "extended_l2=on"),
		one("extl2-2m.qcow2", "-o", "extended_l2=on,cluster_size=2M"),
		one("extl2-zstd.qcow2", "-c", "-o", "extended_l2=on,compression_type=zstd"),
		// refcount widths, lazy refcounts and a dirty image
		one("refcount1.qcow2", "-o", "refcount_bits=1"),
		one("refcount64.qcow2", "-o", "refcount_bits=64"),
		one("lazy-refcounts.qcow2", "-o", "lazy_refcounts=on"),
		{name: "lazy-dirty.qcow2", cmds: [][]string{
			conv("lazy-dirty.qcow2", "-o", "lazy_refcounts=on"),
			append(qio("lazy-dirty.qcow2", "write -P 0x5a 6553600 64k", "abort"), "!"), // "!": abort's exit status is expected
		}},
		// preallocation
		one("prealloc-metadata.qcow2", "-o", "preallocation=metadata"),
		one("prealloc-metadata-v2.qcow2", "-o", "preallocation=metadata,compat=0.10"),
		one("prealloc-falloc.qcow2", "-o", "preallocation=falloc"),
		one("prealloc-full.qcow2", "-o", "preallocation=full"),
		{name: "create-prealloc-meta.qcow2", cmds: [][]string{
			{"qemu-img", "create", "-q", "-f", "qcow2", "-o", "preallocation=metadata", "create-prealloc-meta.qcow2", "32M"},
		}},
		// zero clusters
		{name: "zero-v3.qcow2", cmds: [][]string{conv("zero-v3.qcow2"), qio("zero-v3.qcow2", "write -z 0 1M", "write -z 8392704 4k")}},
		{name: "zero-v3-unmap.qcow2", cmds: [][]string{conv("zero-v3-unmap.qcow2"), qio("zero-v3-unmap.qcow2", "write -z -u 0 1M", "write -z -u 8392704 4k")}},
		{name: "zero-v2.qcow2", cmds: [][]string{conv("zero-v2.qcow2", "-o", "compat=0.10"), qio("zero-v2.qcow2", "write -z 0 1M", "write -z 8392704 4k")}},
		{name: "zero-extl2.qcow2", cmds: [][]string{conv("zero-extl2.qcow2", "-o", "extended_l2=on"), qio("zero-extl2.qcow2", "write -z 0 1M", "write -z 8392704 4k")}},
		{name: "zero-prealloc.qcow2", cmds: [][]string{conv("zero-prealloc.qcow2", "-o", "preallocation=metadata"), qio("zero-prealloc.qcow2", "write -z 0 1M", "write -z 8392704 4k")}},
		{name: "zlib-mixed-rw.qcow2", cmds: [][]string{conv("zlib-mixed-rw.qcow2", "-c"),
			qio("zlib-mixed-rw.qcow2", "write -z 0 1M", "write -z 8392704 4k", "write -P 0x51 4202496 4k", "write -P 0x52 8519680 4k")}},
		// backing chains
		{name: "chain-overlay2.qcow2", cmds: [][]string{
			conv("chain-base.qcow2"),
			{"qemu-img", "create", "-q", "-f", "qcow2", "-b", "chain-base.qcow2", "-F", "qcow2", "chain-overlay1.qcow2"},
			qio("chain-overlay1.qcow2", "write -P 0x61 1M 64k", "write -z 2M 1M", "write -z -u 8M 1M"),
			{"qemu-img", "create", "-q", "-f", "qcow2", "-b", "chain-overlay1.qcow2", "-F", "qcow2", "chain-overlay2.qcow2"},
			qio("chain-overlay2.qcow2", "write -P 0x62 3146240 512"),
		}},
		{name: "chain-raw-backing-grow.qcow2", cmds: [][]string{
			{"qemu-img", "create", "-q", "-f", "qcow2", "-b", "mixed.raw", "-F", "raw", "chain-raw-backing-grow.qcow2", "40M"},
			qio("chain-raw-backing-grow.qcow2", "write -P 0x66 36M 64k", "write -P 0x67 1M 4k"),
		}},
		{name: "chain-extl2-overlay.qcow2", cmds: [][]string{
			conv("chain-base2.qcow2"),
			{"qemu-img", "create", "-q", "-f", "qcow2", "-o", "extended_l2=on", "-b", "chain-base2.qcow2", "-F", "qcow2", "chain-extl2-overlay.qcow2"},
			qio("chain-extl2-overlay.qcow2", "write -P 0x63 10240 2048", "write -z 8392704 4k"),
		}},
		{name: "chain-zstd-over-zlib.qcow2", cmds: [][]string{
			conv("chain-zbase.qcow2", "-c"),
			{"qemu-img", "create", "-q", "-f", "qcow2", "-o", "compression_type=zstd,cluster_size=4k", "-b", "chain-zbase.qcow2", "-F", "qcow2", "chain-zstd-over-zlib.qcow2"},
			qio("chain-zstd-over-zlib.qcow2", "write -c -P 0x68 8M 64k"),
		}},
		// external data files
		{name: "extdata.qcow2", dataFile: "extdata.data", cmds: [][]string{conv("extdata.qcow2", "-o", "data_file=extdata.data")}},
		{name: "extdata-raw.qcow2", dataFile: "extdata-raw.data", cmds: [][]string{conv("extdata-raw.qcow2", "-o", "data_file=extdata-raw.data,data_file_raw=on")}},
		// encryption: refused
		{name: "luks.qcow2", want: qcow2.ErrEncrypted, cmds: [][]string{{"qemu-img", "convert", "--object", secret, "-f", "raw", "-O", "qcow2",
			"-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10", "mixed.raw", "luks.qcow2"}}},
		{name: "aes-legacy.qcow2", want: qcow2.ErrEncrypted, cmds: [][]string{{"qemu-img", "create", "-q", "--object", secret, "-f", "qcow2",
			"-o", "encrypt.format=aes,encrypt.key-secret=sec0", "aes-legacy.qcow2", "32M"}}},
		// internal snapshot (then the active layer changes), bitmap
		{name: "snapshot.qcow2", cmds: [][]string{conv("snapshot.qcow2"), {"qemu-img", "snapshot", "-c", "snap1", "snapshot.qcow2"},
			qio("snapshot.qcow2", "write -P 0 0 1M", "write -P 0x77 8M 64k")}},
		{name: "bitmap.qcow2", cmds: [][]string{conv("bitmap.qcow2"), {"qemu-img", "bitmap", "--add", "bitmap.qcow2", "bm0"}}},
		// odd virtual size
		{name: "odd-size-zlib-2m.qcow2", cmds: [][]string{{"qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-c", "-o", "cluster_size=2M", "odd.raw", "odd-size-zlib-2m.qcow2"}}},
		{name: "odd-size-64k.qcow2", cmds: [][]string{{"qemu-img", "convert", "-f", "raw", "-O", "qcow2", "odd.raw", "odd-size-64k.qcow2"}}},
		// compressed tails past the end of the file
		{name: "t.qcow2", cmds: [][]string{{"qemu-img", "create", "-q", "-f", "qcow2", "t.qcow2", "1M"},
			qio("t.qcow2", "write -c -P 0x11 0 64k", "write -c -P 0x22 64k 64k")}},
		{name: "z.qcow2", cmds: [][]string{{"qemu-img", "create", "-q", "-f", "qcow2", "-o", "compression_type=zstd", "z.qcow2", "1M"},
			qio("z.qcow2", "write -c -P 0x11 0 64k")}},
	}
}

// TestQemuMatrix builds every image of the qcow2-notes.md matrix with
// qemu-img and checks that reading it gives the bytes of
// "qemu-img convert -O raw", and data ranges that cover "qemu-img map"'s.
func TestQemuMatrix(t *testing.T) {
	requireTool(t, "qemu-img")
	requireTool(t, "qemu-io")
	dir := t.TempDir()
	makeMatrixDisk(t, dir)
	for _, c := range matrixCases() {
		t.Run(c.name, func(t *testing.T) {
			for _, args := range c.cmds {
				expectFail := args[len(args)-1] == "!"
				if expectFail {
					args = args[:len(args)-1]
				}
				out, err := runQemuTool(dir, args)
				if err != nil && !expectFail {
					t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
				}
			}
			path := filepath.Join(dir, c.name)
			var opts []qcow2.Option
			if c.dataFile != "" {
				opts = append(opts, qcow2.WithDataFile(filepath.Join(dir, c.dataFile)))
			}
			img, err := qcow2.Open(path, opts...)
			if c.want != nil {
				if !errors.Is(err, c.want) {
					t.Fatalf("Open = %v, want %v", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			if strings.Contains(c.name, "dirty") && !img.Dirty() {
				t.Error("the dirty bit is not set")
			}
			h := sha256.New()
			if _, err := copyImage(h, img); err != nil {
				t.Fatal(err)
			}
			got := hex.EncodeToString(h.Sum(nil))
			want := qemuRawSHA(t, dir, c.name)
			if got != want {
				t.Fatalf("sha256 %s, qemu-img convert gives %s", got, want)
			}
			checkCoversQemuMap(t, dir, c.name, img)
		})
	}
}

// qemuRawSHA converts an image to raw with qemu-img and hashes the result.
func qemuRawSHA(t *testing.T, dir, name string) string {
	t.Helper()
	raw := filepath.Join(dir, "out.raw")
	defer os.Remove(raw)
	cmd := exec.Command("qemu-img", "convert", "-O", "raw", name, raw)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, out)
	}
	f, err := os.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// checkCoversQemuMap checks that every range qemu-img map calls data is
// inside a NextData range: NextData may be conservative (a raw backing
// file's holes, say), never optimistic.
func checkCoversQemuMap(t *testing.T, dir, name string, img *qcow2.Image) {
	t.Helper()
	cmd := exec.Command("qemu-img", "map", "--output=json", name)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("qemu-img map: %v", err)
	}
	var entries []struct {
		Start  int64 `json:"start"`
		Length int64 `json:"length"`
		Data   bool  `json:"data"`
	}
	if err := json.Unmarshal(out, &entries); err != nil {
		t.Fatal(err)
	}
	ours := dataRanges(t, img)
	covered := func(s, e int64) bool {
		for _, r := range ours {
			if r[0] <= s && e <= r[0]+r[1] {
				return true
			}
		}
		return false
	}
	for _, e := range entries {
		if e.Data && !covered(e.Start, e.Start+e.Length) {
			t.Errorf("qemu-img map has data at [%d, %d), NextData skips part of it (ours: %v)", e.Start, e.Start+e.Length, ours)
		}
	}
}

// runQemuTool runs a qemu-img or qemu-io command in dir. Making a LUKS
// image times its key derivation (encrypt.iter-time), which can fail on a
// loaded machine ("Unable to get accurate CPU usage"): a failing LUKS
// command is retried, a few times, before it counts.
func runQemuTool(dir string, args []string) ([]byte, error) {
	for try := 0; ; try++ {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err == nil || try == 4 || !strings.Contains(strings.Join(args, " "), "encrypt.format=luks") {
			return out, err
		}
	}
}
