package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmatool/vmatool/internal/ptable"
)

const demoImage = "../../testdata/images/nixos-demo.qcow2"

const demoRawSHA = "f117d6adc53a6715a6c6b83b6c0011cf40da739e0f8890c308a373beb789e765"

func infoJSON(t *testing.T, path string) infoDoc {
	t.Helper()
	r := runInProcess(t, nil, nil, "info", "--json", path).mustSucceed(t)
	var doc infoDoc
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	return doc
}

func checkDemoPartitions(t *testing.T, tbl *ptable.Table) {
	t.Helper()
	if tbl == nil || tbl.Type != "gpt" || tbl.ID != "8F1F6C1E-3B0E-4C55-9A51-6F1B0E7E2A10" || len(tbl.Partitions) != 2 {
		t.Fatalf("partition table %+v", tbl)
	}
	esp, root := tbl.Partitions[0], tbl.Partitions[1]
	if esp.Start != 1<<20 || esp.Size != 10<<20 || esp.Name != "ESP" || esp.TypeName != "EFI System" {
		t.Errorf("ESP: %+v", esp)
	}
	if root.Start != 11<<20 || root.Size != 52<<20 || root.Name != "nixos" || root.TypeName != "Linux filesystem" {
		t.Errorf("root: %+v", root)
	}
}

// TestInfo reads the demo image's partition table through every reader:
// the qcow2 image, its raw conversion and the disk inside an archive.
func TestInfo(t *testing.T) {
	doc := infoJSON(t, demoImage)
	if doc.Format != "qcow2" || doc.Image.VirtualSize != 64<<20 || doc.Image.Qcow2.Compression != "zlib" || doc.Image.Qcow2.ClusterSize != 65536 {
		t.Errorf("image: %+v %+v", doc.Image, doc.Image.Qcow2)
	}
	checkDemoPartitions(t, doc.Disks[0].Partitions)

	dir := t.TempDir()
	archive := filepath.Join(dir, "demo.vma.zst")
	runInProcess(t, nil, nil, "pack", "-q", "-o", archive, demoImage).mustSucceed(t)
	doc = infoJSON(t, archive)
	if doc.Format != "vma" || doc.ArchiveDoc == nil || doc.Compression != "zstd" || len(doc.Disks) != 1 || doc.Disks[0].Name != "drive-scsi0" || *doc.Disks[0].StoredBytes == 0 {
		t.Errorf("archive: %+v %+v", doc.ArchiveDoc, doc.Disks)
	}
	checkDemoPartitions(t, doc.Disks[0].Partitions)

	u := filepath.Join(dir, "u")
	runInProcess(t, nil, nil, "unpack", "-q", archive, u).mustSucceed(t)
	rawPath := filepath.Join(u, "disk-drive-scsi0.raw")
	if got := fileSHA(t, rawPath); got != demoRawSHA {
		t.Errorf("demo image unpacks to %s, want %s", got, demoRawSHA)
	}
	doc = infoJSON(t, rawPath)
	if doc.Format != "raw" || doc.Image.Allocated >= 64<<20 {
		t.Errorf("raw: %+v", doc.Image)
	}
	checkDemoPartitions(t, doc.Disks[0].Partitions)

	text := runInProcess(t, nil, nil, "info", archive).mustSucceed(t).stdout
	for _, want := range []string{"format:", "vma (zstd-compressed)", "disk drive-scsi0", "partition table: gpt", "EFI System", "nixos"} {
		if !strings.Contains(text, want) {
			t.Errorf("info text lacks %q:\n%s", want, text)
		}
	}
}

func TestInfoMBR(t *testing.T) {
	sfdisk := requireTool(t, "sfdisk")
	img := filepath.Join(t.TempDir(), "mbr.raw")
	writeFile(t, img, make([]byte, 8<<20))
	cmd := exec.Command(sfdisk, "-q", img)
	cmd.Stdin = strings.NewReader("label: dos\nlabel-id: 0x12345678\nstart=2048, size=4096, type=83, bootable\nstart=6144, type=82\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v: %s", err, out)
	}
	tbl := infoJSON(t, img).Disks[0].Partitions
	if tbl.Type != "mbr" || len(tbl.Partitions) != 2 || tbl.Partitions[0].Start != 1<<20 || tbl.Partitions[0].Size != 2<<20 ||
		!tbl.Partitions[0].Bootable || tbl.Partitions[1].Type != "0x82" {
		t.Errorf("%+v", tbl)
	}
}
