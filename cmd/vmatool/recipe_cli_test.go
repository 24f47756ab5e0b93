package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPackRefusesArchive gives pack and create an archive, compressed or
// not, where a disk image belongs: one line naming the file and the
// command that does the job, exit 1, nothing written.
func TestPackRefusesArchive(t *testing.T) {
	for _, name := range []string{"v01-single.vma", "v01-single.vma.zst", "v01-single.vma.gz", "v01-single.vma.lzo"} {
		t.Run(name, func(t *testing.T) {
			archive, err := filepath.Abs(filepath.Join(vectorDir, name))
			if err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			for _, args := range [][]string{
				{"pack", "-q", "-o", filepath.Join(out, "x.vma.zst"), archive},
				{"pack", "-q", "-o", out, "scsi1=" + archive},
				{"create", filepath.Join(out, "x.vma"), "drive-scsi0=" + archive},
			} {
				r := runInProcess(t, nil, nil, args...)
				if args[0] == "create" {
					// A device without -d format= gets vma's deprecation
					// warning first, as Proxmox's tool prints it.
					warning, rest, _ := strings.Cut(r.stderr, "\n")
					if !strings.Contains(warning, "deprecated") {
						t.Errorf("create: first line %q, want vma's deprecation warning", warning)
					}
					r.stderr = rest
				}
				assertOneLine(t, r, archive, "VMA archive", "vmatool convert")
			}
			if left, _ := os.ReadDir(out); len(left) != 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}
