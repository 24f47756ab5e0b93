package ptable_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vmatool/vmatool/internal/ptable"
	"github.com/vmatool/vmatool/qcow2"
)

// requireTool returns the path of an external tool, or skips the test when
// it is missing, unless VMATOOL_REQUIRE_TOOLS=1 makes that a failure.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("VMATOOL_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s not found and VMATOOL_REQUIRE_TOOLS=1: install it (Debian: apt-get install %s)", name, pkg)
	}
	t.Skipf("%s not found: skipping (install %s, or set VMATOOL_REQUIRE_TOOLS=1 to make this a failure)", name, pkg)
	return ""
}

func run(t *testing.T, dir, stdin string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	return out
}

// sfdiskTable is what "sfdisk --json" says about a disk: the oracle.
func sfdiskTable(t *testing.T, dir, img string) ptable.Table {
	t.Helper()
	var j struct {
		PT struct {
			Label      string `json:"label"`
			ID         string `json:"id"`
			SectorSize int    `json:"sectorsize"`
			Partitions []struct {
				Node     string `json:"node"`
				Start    int64  `json:"start"`
				Size     int64  `json:"size"`
				Type     string `json:"type"`
				UUID     string `json:"uuid"`
				Name     string `json:"name"`
				Bootable bool   `json:"bootable"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(run(t, dir, "", "sfdisk", "--json", img), &j); err != nil {
		t.Fatal(err)
	}
	pt := ptable.Table{Type: map[string]string{"gpt": "gpt", "dos": "mbr"}[j.PT.Label], SectorSize: j.PT.SectorSize,
		ID: strings.TrimPrefix(j.PT.ID, "0x")}
	for _, p := range j.PT.Partitions {
		idx, err := strconv.Atoi(strings.TrimPrefix(p.Node, img))
		if err != nil {
			t.Fatal(err)
		}
		typ := p.Type
		if pt.Type == "mbr" {
			n, _ := strconv.ParseUint(p.Type, 16, 8)
			typ = "0x" + strconv.FormatUint(n|0x100, 16)[1:]
		}
		pt.Partitions = append(pt.Partitions, ptable.Partition{
			Index: idx, Start: p.Start * 512, Size: p.Size * 512, Type: typ,
			Name: p.Name, GUID: p.UUID, Bootable: p.Bootable,
		})
	}
	return pt
}

// TestAgainstSfdisk partitions disks with sfdisk and compares
// Read with sfdisk's own reading; then reads the same table through a
// compressed qcow2 image, without converting it back to raw.
func TestAgainstSfdisk(t *testing.T) {
	requireTool(t, "sfdisk", "fdisk")
	dir := t.TempDir()
	layouts := []struct {
		img    string
		script string // for sfdisk
	}{
		{img: "gpt.img", script: `label: gpt
first-lba: 2048
size=1MiB, type=21686148-6449-6E6F-744E-656564454649, name="bios"
size=8MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="ESP"
size=4MiB, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, name="swap"
type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="nixos"
`},
		{img: "dos.img", script: `label: dos
start=2048, size=8MiB, type=83, bootable
size=4MiB, type=82
type=5
size=4MiB, type=83
size=4MiB, type=8e
`},
		{img: "gap.img", script: `label: gpt
start=2048, size=2MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI system"
4: start=8192, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name="root"
`},
	}
	for _, l := range layouts {
		t.Run(l.img, func(t *testing.T) {
			path := filepath.Join(dir, l.img)
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, 32<<20); err != nil {
				t.Fatal(err)
			}
			run(t, dir, l.script, "sfdisk", "-q", l.img)
			want := sfdiskTable(t, dir, l.img)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := ptable.Read(f, 32<<20)
			if err != nil {
				t.Fatal(err)
			}
			checkTable(t, got, &want)

			if _, err := exec.LookPath("qemu-img"); err != nil {
				return
			}
			qpath := path + ".qcow2"
			run(t, dir, "", "qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", l.img, qpath)
			img, err := qcow2.Open(qpath)
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			got, err = ptable.Read(img, img.Size())
			if err != nil {
				t.Fatal(err)
			}
			checkTable(t, got, &want)
		})
	}
}

// checkTable compares with sfdisk's view, which has no type names.
func checkTable(t *testing.T, got, want *ptable.Table) {
	t.Helper()
	if got.Type != want.Type || got.SectorSize != want.SectorSize || !strings.EqualFold(got.ID, want.ID) {
		t.Errorf("table %s/%d/%s, sfdisk says %s/%d/%s", got.Type, got.SectorSize, got.ID, want.Type, want.SectorSize, want.ID)
	}
	parts := slices.Clone(got.Partitions)
	for i := range parts {
		if parts[i].TypeName == "" {
			t.Errorf("partition %d of type %s has no type name", parts[i].Index, parts[i].Type)
		}
		parts[i].TypeName = ""
	}
	if !slices.Equal(parts, want.Partitions) {
		t.Errorf("partitions:\n  got %+v\nsfdisk %+v", parts, want.Partitions)
	}
}
