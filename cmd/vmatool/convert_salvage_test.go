package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vmatool/vmatool/vma"
)

// The salvage tests cut and damage the out-of-order two-disk vector and
// check what unpack and convert --partial make of it: the clusters that
// survived are the intact archive's bytes, the rest reads as zeros, what
// is reported missing is exactly what was cut, and the exit status is 3;
// without --partial the same archive fails with 1 and leaves nothing.

const salvageVector = "v06-out-of-order.vma"

// extentClusters lists, for each extent of an intact archive, its offset
// and the (device name, cluster) pairs it holds.
type extentClusters struct {
	off      int64
	clusters [][2]any // device name, cluster index
}

func salvageLayout(t *testing.T) (archive []byte, exts []extentClusters, images map[string][]byte) {
	t.Helper()
	archive, err := os.ReadFile(filepath.Join(vectorDir, salvageVector))
	if err != nil {
		t.Fatal(err)
	}
	r, err := vma.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	names := map[int]string{}
	for _, d := range r.Header().Devices {
		names[d.ID] = d.Name
	}
	for {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		x := extentClusters{off: e.Offset}
		for _, c := range e.Clusters {
			x.clusters = append(x.clusters, [2]any{names[c.Device], c.Index})
		}
		exts = append(exts, x)
	}
	// The intact disks, as unpack writes them: the manifest's bytes.
	u := filepath.Join(t.TempDir(), "intact")
	runInProcess(t, nil, nil, "unpack", "-q", filepath.Join(vectorDir, salvageVector), u).mustSucceed(t)
	images = map[string][]byte{}
	for _, v := range vectors(t) {
		if v.File != salvageVector {
			continue
		}
		for _, d := range v.Devices {
			b, err := os.ReadFile(filepath.Join(u, "disk-"+d.Name+".raw"))
			if err != nil {
				t.Fatal(err)
			}
			if bytesSHA(b) != d.SHA256 {
				t.Fatalf("intact %s differs from the manifest", d.Name)
			}
			images[d.Name] = b
		}
	}
	return archive, exts, images
}

type missingRange struct {
	Device        string
	Start, Length int64
}

// wantMissing turns lost clusters into the ranges that must be reported:
// in device order (as in the header) and offset order, merged.
func wantMissing(images map[string][]byte, lost [][2]any) []missingRange {
	var out []missingRange
	for _, dev := range []string{"drive-scsi0", "drive-scsi1"} {
		var idx []int64
		for _, l := range lost {
			if l[0] == dev {
				idx = append(idx, int64(l[1].(uint32)))
			}
		}
		slices.Sort(idx)
		size := int64(len(images[dev]))
		for _, c := range idx {
			start, end := c*vma.ClusterSize, min((c+1)*vma.ClusterSize, size)
			if k := len(out); k > 0 && out[k-1].Device == dev && out[k-1].Start+out[k-1].Length == start {
				out[k-1].Length = end - out[k-1].Start
				continue
			}
			out = append(out, missingRange{dev, start, end - start})
		}
	}
	return out
}

// checkSalvaged compares a salvaged disk with the intact one: zeros in the
// missing ranges, the intact bytes elsewhere.
func checkSalvaged(t *testing.T, what string, got []byte, dev string, images map[string][]byte, missing []missingRange) {
	t.Helper()
	want := bytes.Clone(images[dev])
	for _, m := range missing {
		if m.Device == dev {
			clear(want[m.Start : m.Start+m.Length])
		}
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: %s is not the intact disk with zeros where data is missing", what, dev)
	}
}

// salvageCase is a damaged copy of the vector and what it lost.
type salvageCase struct {
	name     string
	archive  []byte
	lost     [][2]any
	damaged  bool // an extent is damaged (not only missing)
	complete bool
}

func salvageCases(t *testing.T) ([]salvageCase, map[string][]byte, []extentClusters) {
	archive, exts, images := salvageLayout(t)
	var cases []salvageCase
	// Cut at every extent boundary, and at the end (complete).
	for k := range exts {
		var lost [][2]any
		for _, e := range exts[k:] {
			lost = append(lost, e.clusters...)
		}
		cases = append(cases, salvageCase{name: fmt.Sprintf("cut at extent %d (offset %d)", k, exts[k].off), archive: archive[:exts[k].off], lost: lost})
	}
	cases = append(cases, salvageCase{name: "intact", archive: archive, complete: true})
	// A corrupted extent in the middle: its header checksum fails.
	bad := bytes.Clone(archive)
	bad[exts[1].off+77] ^= 0x40
	cases = append(cases, salvageCase{name: "corrupted middle extent", archive: bad, lost: exts[1].clusters, damaged: true})
	return cases, images, exts
}

// TestConvertPartial salvages each case to raw and to qcow2 images, and
// to standard output.
func TestConvertPartial(t *testing.T) {
	cases, images, exts := salvageCases(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src := writeFile(t, filepath.Join(dir, "damaged.vma"), tc.archive)
			missing := wantMissing(images, tc.lost)
			wantCode := 3
			if tc.complete {
				wantCode = 0
			}
			for _, format := range []string{"raw", "qcow2"} {
				out := filepath.Join(dir, "out-"+format)
				r := runInProcess(t, nil, nil, "convert", "--partial", "--json", "-O", format, src, out)
				if r.code != wantCode {
					t.Fatalf("%s: exit %d, want %d; stderr %s", format, r.code, wantCode, r.stderr)
				}
				doc := parseConvertDoc(t, r)
				got, _ := json.Marshal(doc.Missing)
				exp, _ := json.Marshal(missing)
				if missing == nil {
					exp = []byte("[]")
				}
				if string(got) != string(exp) {
					t.Errorf("%s: --json missing %s\nwant %s", format, got, exp)
				}
				if doc.Complete != tc.complete || (len(doc.Damage) > 0) != tc.damaged {
					t.Errorf("%s: complete %v, damage %+v", format, doc.Complete, doc.Damage)
				}
				if tc.damaged && (doc.Damage[0].Offset != exts[1].off || doc.Damage[0].Resume == nil || *doc.Damage[0].Resume != exts[2].off ||
					!strings.Contains(doc.Damage[0].Error, "checksum")) {
					t.Errorf("%s: damage %+v, want the extent at %d, resuming at %d", format, doc.Damage[0], exts[1].off, exts[2].off)
				}
				// One stderr line per damage and missing range, then the
				// summary.
				for _, m := range missing {
					line := fmt.Sprintf("%s: missing %d bytes at offset %d\n", m.Device, m.Length, m.Start)
					if !strings.Contains(r.stderr, line) {
						t.Errorf("%s: stderr lacks %q:\n%s", format, line, r.stderr)
					}
				}
				if !tc.complete && !strings.Contains(r.stderr, "salvaged in part") {
					t.Errorf("%s: no summary line:\n%s", format, r.stderr)
				}
				for dev := range images {
					var b []byte
					if format == "raw" {
						b, _ = os.ReadFile(filepath.Join(out, "disk-"+dev+".raw"))
					} else {
						b = qcow2Bytes(t, filepath.Join(out, "disk-"+dev+".qcow2"))
						if requireQemu(t) {
							qemuImgCheck(t, filepath.Join(out, "disk-"+dev+".qcow2"))
						}
					}
					checkSalvaged(t, format, b, dev, images, missing)
				}
			}
			// One disk to standard output.
			r := runInProcess(t, nil, nil, "convert", "--partial", "-d", "scsi1", src, "-")
			if r.code != wantCode {
				t.Fatalf("stream: exit %d, want %d; stderr %s", r.code, wantCode, r.stderr)
			}
			checkSalvaged(t, "stream", []byte(r.stdout), "drive-scsi1", images, missing)
			if tc.complete {
				return
			}
			// Without --partial: exit 1, one line, nothing left.
			parent := t.TempDir()
			for _, args := range [][]string{{"-O", "raw"}, {"-c"}, {"-d", "scsi1"}} {
				r := runInProcess(t, nil, nil, append(append([]string{"convert"}, args...), src, filepath.Join(parent, "out"))...)
				assertOneError(t, r, "damaged.vma", "offset")
				if !strings.Contains(r.stderr, "--partial") {
					t.Errorf("the error does not suggest --partial: %s", r.stderr)
				}
				assertEmptyDir(t, parent)
			}
		})
	}
}

// TestUnpackPartial salvages with unpack: configs and disks are written,
// the report is the same as convert's.
func TestUnpackPartial(t *testing.T) {
	cases, images, _ := salvageCases(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src := writeFile(t, filepath.Join(dir, "damaged.vma"), tc.archive)
			missing := wantMissing(images, tc.lost)
			out := filepath.Join(dir, "out")
			r := vmatool(t, nil, nil, "unpack", "--partial", "--json", src, out)
			wantCode := 3
			if tc.complete {
				wantCode = 0
			}
			if r.code != wantCode {
				t.Fatalf("exit %d, want %d; stderr %s", r.code, wantCode, r.stderr)
			}
			r.assertRSS(t)
			var doc struct {
				Output   string
				Complete bool
				Missing  []missingRange
			}
			if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(doc.Missing) != fmt.Sprint(missing) || doc.Complete != tc.complete || doc.Output != out {
				t.Errorf("--json %+v, want missing %v", doc, missing)
			}
			if got := dirNames(t, out); strings.Join(got, " ") != "disk-drive-scsi0.raw disk-drive-scsi1.raw qemu-server.conf" {
				t.Errorf("wrote %v", got)
			}
			for dev := range images {
				b, _ := os.ReadFile(filepath.Join(out, "disk-"+dev+".raw"))
				checkSalvaged(t, "unpack", b, dev, images, missing)
			}
			if tc.complete {
				return
			}
			parent := t.TempDir()
			r = runInProcess(t, nil, nil, "unpack", src, filepath.Join(parent, "out"))
			assertOneError(t, r, "damaged.vma", "offset", "--partial")
			assertEmptyDir(t, parent)
		})
	}
}

// TestPartialHeaderDamage: a damaged header cannot be salvaged.
func TestPartialHeaderDamage(t *testing.T) {
	for _, cmd := range [][]string{{"unpack", "--partial"}, {"convert", "--partial"}} {
		parent := t.TempDir()
		r := runInProcess(t, nil, nil, append(cmd, filepath.Join(vectorDir, "e01-header-md5.vma"), filepath.Join(parent, "out"))...)
		assertOneError(t, r, "e01-header-md5.vma", "header checksum")
		assertEmptyDir(t, parent)
	}
}
