package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmatool/vmatool/qcow2"
	"github.com/vmatool/vmatool/vma"
)

// qemuImgCheck runs "qemu-img check", which exits 0 only when the image
// has neither errors nor leaked clusters.
func qemuImgCheck(t *testing.T, path string) {
	t.Helper()
	out, err := exec.Command("qemu-img", "check", path).CombinedOutput()
	if err != nil {
		t.Errorf("qemu-img check %s: %v\n%s", filepath.Base(path), err, out)
	}
}

// qemuImgCompare runs "qemu-img compare" of a raw image and a qcow2 image.
func qemuImgCompare(t *testing.T, rawPath, qcow2Path string) {
	t.Helper()
	out, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "qcow2", rawPath, qcow2Path).CombinedOutput()
	if err != nil {
		t.Errorf("qemu-img compare %s %s: %v\n%s", filepath.Base(rawPath), filepath.Base(qcow2Path), err, out)
	}
}

// streamSHA hashes a file without holding it in memory.
func streamSHA(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
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

func bytesSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// qcow2Bytes reads a qcow2 image with the package's reader.
func qcow2Bytes(t *testing.T, path string) []byte {
	t.Helper()
	img, err := qcow2.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	b := make([]byte, img.Size())
	if _, err := img.ReadAt(b, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return b
}

// convertDoc is convert --json.
type convertDoc struct {
	Source   string
	Output   string
	Complete bool
	Devices  []struct {
		Device       string
		Format       string
		Path         string
		VirtualSize  int64 `json:"virtual_size"`
		BytesWritten int64 `json:"bytes_written"`
		Seconds      float64
	}
	Missing []struct {
		Device        string
		Start, Length int64
	}
	Damage []struct {
		Offset int64
		Resume *int64
		Error  string
	}
}

func parseConvertDoc(t *testing.T, r result) convertDoc {
	t.Helper()
	var doc convertDoc
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("--json output %q: %v (stderr %s)", r.stdout, err, r.stderr)
	}
	return doc
}

// TestConvertVectors converts every reference archive to qcow2 and raw:
// the raw images are the manifest's bytes, and the qcow2 images pass
// qemu-img check and compare equal to unpack's raw output.
func TestConvertVectors(t *testing.T) {
	for _, v := range vectors(t) {
		if v.Expect != "ok" {
			continue
		}
		t.Run(v.File, func(t *testing.T) {
			path := filepath.Join(vectorDir, v.File)
			dir := t.TempDir()
			if len(v.Devices) == 0 {
				r := runInProcess(t, nil, nil, "convert", path, filepath.Join(dir, "q"))
				if r.code != 1 || !strings.Contains(r.stderr, "no disks") {
					t.Errorf("diskless archive: exit %d, %s", r.code, r.stderr)
				}
				assertEmptyDir(t, dir)
				return
			}
			raw, q, qc := filepath.Join(dir, "r"), filepath.Join(dir, "q"), filepath.Join(dir, "qc")
			runInProcess(t, nil, nil, "convert", "-q", "-O", "raw", path, raw).mustSucceed(t)
			runInProcess(t, nil, nil, "convert", "-q", path, q).mustSucceed(t)
			r := vmatool(t, nil, nil, "convert", "-q", "-c", "--json", path, qc).mustSucceed(t)
			r.assertRSS(t)
			doc := parseConvertDoc(t, r)
			if !doc.Complete || doc.Output != qc || len(doc.Devices) != len(v.Devices) {
				t.Errorf("--json: %+v", doc)
			}
			var wantNames []string
			for i, d := range v.Devices {
				wantNames = append(wantNames, "disk-"+d.Name+".qcow2")
				rawPath := filepath.Join(raw, "disk-"+d.Name+".raw")
				if got := fileSHA(t, rawPath); got != d.SHA256 {
					t.Errorf("%s raw: sha256 %s, want %s", d.Name, got, d.SHA256)
				}
				for _, img := range []string{filepath.Join(q, "disk-"+d.Name+".qcow2"), filepath.Join(qc, "disk-"+d.Name+".qcow2")} {
					if got := bytesSHA(qcow2Bytes(t, img)); got != d.SHA256 {
						t.Errorf("%s: read back, sha256 %s, want %s", img, got, d.SHA256)
					}
				}
				if dd := doc.Devices[i]; dd.Device != d.Name || dd.Format != "qcow2" || dd.VirtualSize != (d.Size+511)&^511 ||
					dd.BytesWritten != fileSize(dd.Path) || dd.Path != filepath.Join(qc, "disk-"+d.Name+".qcow2") {
					t.Errorf("--json device %d: %+v", i, dd)
				}
			}
			if got := dirNames(t, q); strings.Join(got, " ") != strings.Join(sortedCopy(wantNames), " ") {
				t.Errorf("wrote %v, want %v (disks only)", got, wantNames)
			}
			t.Run("qemu-img", func(t *testing.T) {
				requireTool(t, "qemu-img")
				u := filepath.Join(dir, "u")
				runInProcess(t, nil, nil, "unpack", "-q", path, u).mustSucceed(t)
				for _, d := range v.Devices {
					for _, img := range []string{filepath.Join(q, "disk-"+d.Name+".qcow2"), filepath.Join(qc, "disk-"+d.Name+".qcow2")} {
						qemuImgCheck(t, img)
						qemuImgCompare(t, filepath.Join(u, "disk-"+d.Name+".raw"), img)
					}
				}
			})
		})
	}
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	for i := 1; i < len(c); i++ {
		for j := i; j > 0 && c[j] < c[j-1]; j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
	return c
}

// sparseMixedImage writes a sparse raw image of size bytes holding about data
// bytes in a dozen places: random (incompressible) and text-like
// (compressible) blocks, blocks of zeros written out (allocated, but
// zeros), and blocks with a single byte set. It returns the path.
func sparseMixedImage(t *testing.T, path string, size, data int64, seed uint64) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 11))
	const pieces = 12
	piece := data / pieces &^ 4095
	for i := range int64(pieces) {
		off := (size - piece) / (pieces - 1) * i &^ 4095
		if i == pieces-1 {
			off = size - piece // the very end of the disk too
		}
		b := make([]byte, piece)
		for blk := int64(0); blk < piece; blk += 4096 {
			switch rng.IntN(4) {
			case 0:
				for j := blk; j < blk+4096; j += 8 {
					binary.LittleEndian.PutUint64(b[j:], rng.Uint64())
				}
			case 1:
				copy(b[blk:blk+4096], bytes.Repeat(fmt.Appendf(nil, "/nix/store/%08x-nixos-system %d\n", rng.Uint32(), blk), 200))
			case 2: // zeros, written out
			case 3:
				b[blk+int64(rng.IntN(4096))] = byte(1 + rng.IntN(255))
			}
		}
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// TestConvertLargeSparse converts 1 GiB disks holding a few MiB, from a
// raw image and from a .vma.zst archive, to qcow2 compressed with zstd
// and with zlib, and to raw: qemu-img finds the images sound and equal to
// the source, raw outputs are the source's bytes and sparse, and memory
// stays within the bound.
func TestConvertLargeSparse(t *testing.T) {
	dir := t.TempDir()
	img := sparseMixedImage(t, filepath.Join(dir, "mixed.raw"), 1<<30, 6<<20, 1)
	archive := filepath.Join(dir, "mixed.vma.zst")
	runInProcess(t, nil, nil, "pack", "-q", "-o", archive, img).mustSucceed(t)
	want := streamSHA(t, img)
	for _, src := range []string{img, archive} {
		for _, comp := range []string{"zstd", "zlib"} {
			t.Run(filepath.Base(src)+"/"+comp, func(t *testing.T) {
				out := filepath.Join(t.TempDir(), "out.qcow2")
				args := []string{"convert", "-q", "--compression", comp, src, out}
				if src == archive {
					args = []string{"convert", "-q", "--compression", comp, "-d", "scsi0", src, out}
				}
				r := vmatool(t, nil, nil, args...).mustSucceed(t)
				r.assertRSS(t)
				logRSS(t, "convert", r)
				if st, _ := os.Stat(out); st.Size() > 8<<20 {
					t.Errorf("image of 6 MiB of data takes %d bytes", st.Size())
				}
				if got := bytesSHA(qcow2Bytes(t, out)); got != want {
					t.Errorf("read back: sha256 %s, want %s", got, want)
				}
				if requireQemu(t) {
					qemuImgCheck(t, out)
					qemuImgCompare(t, img, out)
					info, _ := exec.Command("qemu-img", "info", out).CombinedOutput()
					if !strings.Contains(string(info), "compression type: "+comp) {
						t.Errorf("qemu-img info does not say %s:\n%s", comp, info)
					}
				}
			})
		}
		t.Run(filepath.Base(src)+"/raw", func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.raw")
			r := vmatool(t, nil, nil, "convert", "-q", src, out).mustSucceed(t)
			r.assertRSS(t)
			if got := streamSHA(t, out); got != want {
				t.Errorf("sha256 %s, want %s", got, want)
			}
			// The zero blocks the source wrote out are holes here.
			if a, b := allocatedBytes(t, out), allocatedBytes(t, img); a >= b {
				t.Errorf("raw output allocates %d bytes, the source %d: zero blocks not made holes", a, b)
			}
		})
	}
}

// requireQemu is requireTool for qemu-img inside a test that has other
// checks to make without it.
func requireQemu(t *testing.T) bool {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err == nil {
		return true
	}
	if os.Getenv("VMATOOL_REQUIRE_TOOLS") == "1" {
		t.Fatal("qemu-img is required (VMATOOL_REQUIRE_TOOLS=1) but not installed")
	}
	t.Log("qemu-img not installed: skipping its checks")
	return false
}

// TestConvert16TiB converts a qcow2 image of 16 TiB holding 3 MiB, to a
// compressed image and to 2 MiB clusters: fast, small, and sound.
func TestConvert16TiB(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "huge.qcow2")
	const size = 16 << 40
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	w, err := qcow2.NewWriter(f, size)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(16, 40))
	chunks := map[int64][]byte{0: nil, 7<<40 + 3<<30: nil, size - 1<<20: nil}
	for off := range chunks {
		b := make([]byte, 1<<20)
		for i := range b {
			b[i] = byte(rng.IntN(4)) // compressible
		}
		chunks[off] = b
		if _, err := w.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, args := range [][]string{{"-c"}, {"--cluster-size", "2M"}, {"--cluster-size", "16K", "--compression", "zlib"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.qcow2")
			r := vmatool(t, nil, nil, append(append([]string{"convert", "-q", "--json"}, args...), src, out)...).mustSucceed(t)
			r.assertRSS(t)
			doc := parseConvertDoc(t, r)
			if len(doc.Devices) != 1 || doc.Devices[0].VirtualSize != size || doc.Devices[0].BytesWritten > 32<<20 {
				t.Errorf("--json: %+v", doc.Devices)
			}
			img, err := qcow2.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			if img.Size() != size {
				t.Errorf("size %d", img.Size())
			}
			for off, want := range chunks {
				got := make([]byte, len(want)+8192)
				start := max(off-4096, 0)
				n, _ := img.ReadAt(got, start)
				got = got[:n]
				exp := make([]byte, len(got))
				copy(exp[off-start:], want)
				if !bytes.Equal(got, exp) {
					t.Errorf("data at %d differs", off)
				}
			}
			if requireQemu(t) {
				qemuImgCheck(t, out)
				cmp, err := exec.Command("qemu-img", "compare", src, out).CombinedOutput()
				if err != nil {
					t.Errorf("qemu-img compare: %v\n%s", err, cmp)
				}
			}
		})
	}
}

// TestConvertStream streams one disk to standard output: archives in
// order and out of order, from a file and from standard input, and an
// image; an archive out of order beyond the reorder window fails and says
// what to do instead; qcow2 cannot go to a pipe.
func TestConvertStream(t *testing.T) {
	man := map[string]vector{}
	for _, v := range vectors(t) {
		man[v.File] = v
	}
	for _, tc := range []struct {
		file, dev string
		stdin     bool
	}{
		{"v01-single.vma", "", false},
		{"v01-single.vma.zst", "", true},
		{"v01-single.vma.lzo", "", true},
		{"v06-out-of-order.vma", "scsi0", false},
		{"v06-out-of-order.vma", "drive-scsi1", true},
		{"v02-two-disks.vma", "efidisk0", false},
	} {
		t.Run(tc.file+"/"+tc.dev, func(t *testing.T) {
			path := filepath.Join(vectorDir, tc.file)
			args := []string{"convert", "-O", "raw"}
			if tc.dev != "" {
				args = append(args, "-d", tc.dev)
			}
			var stdin io.Reader
			if tc.stdin {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				stdin, path = bytes.NewReader(b), "-"
			}
			r := vmatool(t, stdin, nil, append(args, path, "-")...).mustSucceed(t)
			r.assertRSS(t)
			want := ""
			for _, d := range man[tc.file].Devices {
				if tc.dev == "" || d.Name == tc.dev || d.Name == "drive-"+tc.dev {
					want = d.SHA256
				}
			}
			if got := bytesSHA([]byte(r.stdout)); got != want {
				t.Errorf("streamed sha256 %s, want %s", got, want)
			}
		})
	}
	t.Run("image", func(t *testing.T) {
		dir := t.TempDir()
		img := sparseMixedImage(t, filepath.Join(dir, "m.raw"), 64<<20, 2<<20, 2)
		q := filepath.Join(dir, "m.qcow2")
		runInProcess(t, nil, nil, "convert", "-q", "-c", img, q).mustSucceed(t)
		want := streamSHA(t, img)
		for _, src := range []string{img, q} {
			r := runInProcess(t, nil, nil, "convert", "-q", src, "-").mustSucceed(t)
			if got := bytesSHA([]byte(r.stdout)); got != want {
				t.Errorf("%s streamed: sha256 %s, want %s", src, got, want)
			}
		}
	})
	t.Run("qcow2 to a pipe", func(t *testing.T) {
		r := runInProcess(t, nil, nil, "convert", "-O", "qcow2", filepath.Join(vectorDir, "v01-single.vma"), "-")
		if r.code != 2 || !strings.Contains(r.stderr, "seekable") || r.stdout != "" {
			t.Errorf("exit %d, stdout %d bytes, stderr %s", r.code, len(r.stdout), r.stderr)
		}
	})
	t.Run("reorder window", func(t *testing.T) { testReorderWindow(t) })
}

// farArchive is an archive of one 96 MiB disk with data in clusters 0, 5
// and far, where cluster far comes first, then all the others in order.
func farArchive(t *testing.T, path string, far uint32) []byte {
	t.Helper()
	const size = 96 << 20
	disk := make([]byte, size)
	for _, c := range []int64{0, 5, int64(far)} {
		for i := range int64(vma.ClusterSize) {
			disk[c*vma.ClusterSize+i] = byte(c + i%251 + 1)
		}
	}
	var out bytes.Buffer
	w, err := vma.NewWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	id, err := w.AddDevice("drive-scsi0", size)
	if err != nil {
		t.Fatal(err)
	}
	cluster := func(c uint32) []byte { return disk[int64(c)*vma.ClusterSize : int64(c+1)*vma.ClusterSize] }
	if err := w.WriteCluster(id, far, cluster(far)); err != nil {
		t.Fatal(err)
	}
	for c := uint32(0); c < size/vma.ClusterSize; c++ {
		if c != far {
			if err := w.WriteCluster(id, c, cluster(c)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, out.Bytes())
	return disk
}

func testReorderWindow(t *testing.T) {
	dir := t.TempDir()
	// 1000 clusters ahead (62.5 MiB): within the 64 MiB window.
	near := filepath.Join(dir, "near.vma")
	disk := farArchive(t, near, 1000)
	r := runInProcess(t, nil, nil, "convert", near, "-").mustSucceed(t)
	if bytesSHA([]byte(r.stdout)) != bytesSHA(disk) {
		t.Error("archive out of order within the window streamed wrong")
	}
	logRSS(t, "stream with a full window", r)
	// 1100 clusters ahead: beyond it.
	far := filepath.Join(dir, "far.vma")
	disk = farArchive(t, far, 1100)
	r = runInProcess(t, nil, nil, "convert", far, "-")
	assertOneError(t, r, "far.vma", "reorder window", "cluster 1100", "convert -O raw")
	// Salvage gives up on the clusters it waited for: cluster 0 and 5
	// come too late and are reported missing; the rest streams.
	r = runInProcess(t, nil, nil, "convert", "--partial", far, "-")
	if r.code != 3 {
		t.Fatalf("--partial: exit %d, %s", r.code, r.stderr)
	}
	want := bytes.Clone(disk)
	clear(want[:vma.ClusterSize])
	clear(want[5*vma.ClusterSize : 6*vma.ClusterSize])
	if bytesSHA([]byte(r.stdout)) != bytesSHA(want) {
		t.Error("--partial stream is not the disk with clusters 0 and 5 as zeros")
	}
	for _, line := range []string{"drive-scsi0: missing 65536 bytes at offset 0\n", "drive-scsi0: missing 65536 bytes at offset 327680\n"} {
		if !strings.Contains(r.stderr, line) {
			t.Errorf("stderr lacks %q:\n%s", line, r.stderr)
		}
	}
}

// TestConvertImageRoundTrips converts images to images and archives and
// back: raw to qcow2 (every cluster size from 512 bytes to 2 MiB,
// compressed or not) to raw, raw and qcow2 to archives.
func TestConvertImageRoundTrips(t *testing.T) {
	dir := t.TempDir()
	img := sparseMixedImage(t, filepath.Join(dir, "m.raw"), 48<<20+4096, 3<<20, 3)
	want := streamSHA(t, img)
	for _, tc := range [][]string{
		{"--cluster-size", "512"}, {"--cluster-size", "4K", "-c"}, {}, {"-c", "--compression", "zlib"},
		{"--cluster-size", "128K", "-c"}, {"--cluster-size", "2M"},
	} {
		t.Run(strings.Join(tc, " "), func(t *testing.T) {
			d := t.TempDir()
			q, back := filepath.Join(d, "m.qcow2"), filepath.Join(d, "back.raw")
			runInProcess(t, nil, nil, append(append([]string{"convert", "-q"}, tc...), img, q)...).mustSucceed(t)
			// qcow2 to qcow2 with another cluster size, then to raw.
			q2 := filepath.Join(d, "m2.qcow2")
			runInProcess(t, nil, nil, "convert", "-q", "--cluster-size", "64K", q, q2).mustSucceed(t)
			runInProcess(t, nil, nil, "convert", "-q", q2, back).mustSucceed(t)
			if got := streamSHA(t, back); got != want {
				t.Errorf("raw -> qcow2 -> qcow2 -> raw: sha256 %s, want %s", got, want)
			}
			if requireQemu(t) {
				qemuImgCheck(t, q)
				qemuImgCompare(t, img, q)
				qemuImgCheck(t, q2)
			}
		})
	}
	for _, src := range []string{img, filepath.Join(dir, "c.qcow2")} {
		if !strings.HasSuffix(src, ".raw") {
			runInProcess(t, nil, nil, "convert", "-q", "-c", img, src).mustSucceed(t)
		}
		for _, out := range []string{"a.vma", "a.vma.zst", "a.vma.gz"} {
			t.Run(filepath.Base(src)+" to "+out, func(t *testing.T) {
				d := t.TempDir()
				path := filepath.Join(d, out)
				r := runInProcess(t, nil, nil, "convert", "--json", "-d", "virtio1", "--vmid", "321", src, path).mustSucceed(t)
				doc := parseConvertDoc(t, r)
				if doc.Output != path || len(doc.Devices) != 1 || doc.Devices[0].Format != "vma" ||
					doc.Devices[0].VirtualSize != 48<<20+4096 || doc.Devices[0].BytesWritten != fileSize(path) {
					t.Errorf("--json: %+v", doc)
				}
				runInProcess(t, nil, nil, "verify", "-q", path).mustSucceed(t)
				u := filepath.Join(d, "u")
				runInProcess(t, nil, nil, "unpack", "-q", path, u).mustSucceed(t)
				if got := streamSHA(t, filepath.Join(u, "disk-drive-virtio1.raw")); got != want {
					t.Errorf("sha256 %s, want %s", got, want)
				}
				conf, _ := os.ReadFile(filepath.Join(u, "qemu-server.conf"))
				if !strings.Contains(string(conf), "#qmdump#map:virtio1:drive-virtio1:") || !strings.Contains(string(conf), "vm-321-disk-0") {
					t.Errorf("config:\n%s", conf)
				}
				// And back: the archive to qcow2, to a file.
				back := filepath.Join(d, "back.qcow2")
				runInProcess(t, nil, nil, "convert", "-q", path, back).mustSucceed(t)
				if got := bytesSHA(qcow2Bytes(t, back)); got != want {
					t.Errorf("archive -> qcow2: sha256 %s, want %s", got, want)
				}
			})
		}
	}
}

// TestConvertRefuses checks the usage errors and that outputs are never
// overwritten without --force.
func TestConvertRefuses(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, dir, "a.raw", 1<<20)
	v02 := filepath.Join(vectorDir, "v02-two-disks.vma")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{v02, filepath.Join(dir, "one.qcow2")}, 2, "name one with -d"},
		{[]string{v02, "-"}, 2, "name one with -d"},
		{[]string{"--json", img, "-"}, 2, "--json"},
		{[]string{"-O", "vmdk", img, filepath.Join(dir, "x")}, 2, "vmdk"},
		{[]string{img, filepath.Join(dir, "x.unknown")}, 2, "-O"},
		{[]string{"--partial", img, filepath.Join(dir, "x.qcow2")}, 2, "--partial"},
		{[]string{"-c", img, filepath.Join(dir, "x.raw")}, 2, "raw is never compressed"},
		{[]string{"--cluster-size", "3K", img, filepath.Join(dir, "x.qcow2")}, 2, "cluster size"},
		{[]string{"--compression", "lz4", img, filepath.Join(dir, "x.qcow2")}, 2, "lz4"},
		{[]string{"--vmid", "5", img, filepath.Join(dir, "x.qcow2")}, 2, "archive output"},
		{[]string{v02, filepath.Join(dir, "x.vma")}, 2, "unpack, then pack"},
		{[]string{"-d", "scsi7", v02, filepath.Join(dir, "x.qcow2")}, 1, `no device named "scsi7"`},
		{[]string{"-f", "qcow2", "-", filepath.Join(dir, "x.qcow2")}, 2, "standard input"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := runInProcess(t, nil, nil, append([]string{"convert"}, tc.args...)...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", r.code, r.stderr, tc.code, tc.want)
			}
		})
	}
	if names := dirNames(t, dir); len(names) != 1 {
		t.Errorf("refusals left %v", names)
	}
	// Existing outputs: refused without --force, replaced with it.
	out := writeFile(t, filepath.Join(dir, "out.qcow2"), []byte("precious"))
	if r := runInProcess(t, nil, nil, "convert", "-q", img, out); r.code != 1 || !strings.Contains(r.stderr, "--force") {
		t.Errorf("over an existing file: exit %d, %s", r.code, r.stderr)
	}
	if b, _ := os.ReadFile(out); string(b) != "precious" {
		t.Fatal("existing output changed")
	}
	runInProcess(t, nil, nil, "convert", "-q", "--force", img, out).mustSucceed(t)
	if bytesSHA(qcow2Bytes(t, out)) != fileSHA(t, img) {
		t.Error("--force output differs")
	}
	folder := filepath.Join(dir, "disks")
	runInProcess(t, nil, nil, "convert", "-q", v02, folder).mustSucceed(t)
	if r := runInProcess(t, nil, nil, "convert", "-q", v02, folder); r.code != 1 || !strings.Contains(r.stderr, "--force") {
		t.Errorf("over an existing folder: exit %d, %s", r.code, r.stderr)
	}
	runInProcess(t, nil, nil, "convert", "-q", "--force", "-O", "qcow2", v02, folder).mustSucceed(t)
	// -d into an existing folder: the folder gets that one disk.
	one := filepath.Join(dir, "one")
	os.Mkdir(one, 0o755)
	runInProcess(t, nil, nil, "convert", "-q", "-O", "raw", "-d", "scsi0", v02, one).mustSucceed(t)
	if got := dirNames(t, one); strings.Join(got, " ") != "disk-drive-scsi0.raw" {
		t.Errorf("-d into a folder wrote %v", got)
	}
	// A source that is a bad archive: one line, nothing left.
	bad := filepath.Join(vectorDir, "e02-extent-md5.vma")
	outDir := t.TempDir()
	r := runInProcess(t, nil, nil, "convert", bad, filepath.Join(outDir, "x"))
	assertOneError(t, r, "e02-extent-md5.vma", "offset", "extent checksum mismatch", "--partial")
	assertEmptyDir(t, outDir)
}
