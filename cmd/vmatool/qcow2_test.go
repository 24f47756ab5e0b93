package main

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const qcow2Dir = "../../testdata/qcow2"

// gunzipFixture writes testdata/qcow2/NAME.gz to dir/NAME.
func gunzipFixture(t *testing.T, dir, name string) string {
	t.Helper()
	f, err := os.Open(filepath.Join(qcow2Dir, name+".gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	o, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if _, err := io.Copy(o, zr); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPackQcow2Fixtures packs committed qcow2 images (with a raw disk in
// the same archive) and checks the unpacked disks against the sha256 of
// qemu-img convert -O raw recorded in the fixtures' manifest.
func TestPackQcow2Fixtures(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(qcow2Dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var manifest []struct {
		Name   string `json:"name"`
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
		Files  []string
	}
	if err := json.Unmarshal(b, &manifest); err != nil {
		t.Fatal(err)
	}
	sums := map[string]string{}
	for _, m := range manifest {
		sums[m.Name] = m.SHA256
	}
	dir := t.TempDir()
	rawDisk := testImage(t, dir, "other.raw", 1<<20)
	for _, name := range []string{"v3-64k.qcow2", "zlib-64k.qcow2", "zstd-64k.qcow2", "v2-4k.qcow2", "extl2-64k.qcow2", "zero-v3.qcow2", "tail-zlib.qcow2", "odd-zlib-2m.qcow2", "c512.qcow2"} {
		t.Run(name, func(t *testing.T) {
			want, ok := sums[name]
			if !ok {
				t.Fatalf("%s is not in the fixtures' manifest", name)
			}
			img := gunzipFixture(t, dir, name)
			out := filepath.Join(t.TempDir(), "x.vma.zst")
			runInProcess(t, nil, nil, "pack", "-q", "-o", out, "scsi0="+img, "scsi1="+rawDisk).mustSucceed(t)
			u := filepath.Join(t.TempDir(), "u")
			runInProcess(t, nil, nil, "unpack", "-q", out, u).mustSucceed(t)
			if got := fileSHA(t, filepath.Join(u, "disk-drive-scsi0.raw")); got != want {
				t.Errorf("unpacked qcow2 disk: sha256 %s, qemu-img gives %s", got, want)
			}
			if fileSHA(t, filepath.Join(u, "disk-drive-scsi1.raw")) != fileSHA(t, rawDisk) {
				t.Error("the raw disk beside it changed")
			}
		})
	}
	t.Run("encrypted images are refused", func(t *testing.T) {
		for _, name := range []string{"luks.qcow2", "aes.qcow2"} {
			img := gunzipFixture(t, dir, name)
			outDir := t.TempDir()
			r := runInProcess(t, nil, nil, "pack", "-q", "-o", filepath.Join(outDir, "x.vma"), img)
			if r.code != 1 || !strings.Contains(r.stderr, "encrypt") {
				t.Errorf("%s: exit %d, %q", name, r.code, r.stderr)
			}
			assertEmptyDir(t, outDir)
		}
	})
	t.Run("external data file only when named", func(t *testing.T) {
		img := gunzipFixture(t, dir, "extdata.qcow2")
		data := gunzipFixture(t, dir, "extdata.data")
		out := filepath.Join(t.TempDir(), "x.vma")
		if r := runInProcess(t, nil, nil, "pack", "-q", "-o", out, img); r.code != 1 || !strings.Contains(r.stderr, "--data-file") {
			t.Errorf("without --data-file: exit %d, %q", r.code, r.stderr)
		}
		runInProcess(t, nil, nil, "pack", "-q", "-o", out, "--data-file", img+"="+data, img).mustSucceed(t)
		u := filepath.Join(t.TempDir(), "u")
		runInProcess(t, nil, nil, "unpack", "-q", out, u).mustSucceed(t)
		if got := fileSHA(t, filepath.Join(u, "disk-drive-scsi0.raw")); got != sums["extdata.qcow2"] {
			t.Errorf("sha256 %s, want %s", got, sums["extdata.qcow2"])
		}
	})
}

// mixedImage writes a raw image of random, text-like, zero and hole runs.
func mixedImage(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.New(rand.NewPCG(7, 8))
	run := make([]byte, 256<<10)
	for off := int64(0); off < size; off += int64(len(run)) {
		switch rng.IntN(4) {
		case 0:
			for i := range run {
				run[i] = byte(rng.Uint32())
			}
		case 1:
			for i := range run {
				run[i] = "nixos store path journal "[i%25]
			}
		case 2:
			clear(run)
		case 3:
			continue // a hole
		}
		if _, err := f.WriteAt(run, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

// TestPackQcow2AgainstQemuImg packs images qemu-img makes from one raw disk
// and checks each unpacks to what qemu-img convert -O raw gives.
func TestPackQcow2AgainstQemuImg(t *testing.T) {
	qemuImg := requireTool(t, "qemu-img")
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	mixedImage(t, src, 24<<20+4096)
	for _, tc := range []struct{ name, opts string }{
		{"plain", ""},
		{"zlib", "-c"},
		{"zstd", "-c -o compression_type=zstd"},
		{"v2", "-o compat=0.10"},
		{"extended-l2", "-o extended_l2=on"},
		{"2m-zlib", "-c -o cluster_size=2M"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := filepath.Join(dir, tc.name+".qcow2")
			args := append([]string{"convert", "-f", "raw", "-O", "qcow2"}, strings.Fields(tc.opts)...)
			if out, err := exec.Command(qemuImg, append(args, src, img)...).CombinedOutput(); err != nil {
				t.Fatalf("qemu-img: %v: %s", err, out)
			}
			ref := filepath.Join(dir, tc.name+".ref.raw")
			if out, err := exec.Command(qemuImg, "convert", "-O", "raw", img, ref).CombinedOutput(); err != nil {
				t.Fatalf("qemu-img: %v: %s", err, out)
			}
			out := filepath.Join(t.TempDir(), "x.vma.zst")
			runInProcess(t, nil, nil, "pack", "-q", "-o", out, img).mustSucceed(t)
			u := filepath.Join(t.TempDir(), "u")
			runInProcess(t, nil, nil, "unpack", "-q", out, u).mustSucceed(t)
			if fileSHA(t, filepath.Join(u, "disk-drive-scsi0.raw")) != fileSHA(t, ref) {
				t.Error("qcow2 -> pack -> unpack differs from qemu-img convert -O raw")
			}
		})
	}
}
