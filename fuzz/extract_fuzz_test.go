package fuzz

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/vmatool/vmatool/vma"
)

// FuzzExtractFiles extracts arbitrary archives into a fresh directory, laid
// out as unpack and Proxmox's extract lay them out: each config under its
// name, each disk written to its TempFileName and then linked to its
// FileName, the VM state straight to vmstate.bin. Names are used as they
// come once Header.CheckNames passes them, so that any name the rules let
// through and a filesystem takes differently shows up. No file may appear
// anywhere but directly in the directory, no output may meet another, and
// what Extract accepts must leave exactly the expected files. Header and
// extent checksums are recomputed first, so that mutated names get past
// them.
func FuzzExtractFiles(f *testing.F) {
	addVMASeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		// Checksums recomputed, so that mutated names get as far as here.
		r, err := openFuzzArchive(fixChecksums(data))
		if err != nil {
			return
		}
		h := r.Header()
		if diskBytes(h) > fuzzMaxDisks {
			return
		}
		root := t.TempDir()
		dir := filepath.Join(root, "out")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		want, err := extractFiles(t, r, dir)
		var files []string
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if filepath.Dir(p) != dir {
					t.Fatalf("%s was written outside %s", p, dir)
				}
				files = append(files, filepath.Base(p))
			}
			return nil
		})
		if err != nil {
			return
		}
		slices.Sort(files)
		slices.Sort(want)
		if !slices.Equal(files, want) {
			t.Fatalf("extracted %q, want %q", files, want)
		}
	})
}

// extractFiles writes r into dir and returns the names it must hold if it
// returns no error.
func extractFiles(t *testing.T, r *vma.Reader, dir string) ([]string, error) {
	ctx := context.Background()
	h := r.Header()
	if err := h.CheckNames(); err != nil {
		if eerr := vma.Extract(ctx, r, nil); eerr == nil || eerr.Error() != err.Error() {
			t.Fatalf("CheckNames refused the names (%v), Extract said %v", err, eerr)
		}
		return nil, err
	}
	create := func(name string) *os.File {
		p := filepath.Join(dir, name)
		if filepath.Dir(p) != dir || filepath.Base(p) != name {
			t.Fatalf("CheckNames passed %q, which is not a file name in the directory", name)
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatalf("CheckNames passed the names, yet: %v", err)
		}
		return f
	}
	var want []string
	for _, c := range h.Configs {
		f := create(c.Name)
		if _, err := f.Write(c.Data); err != nil {
			t.Fatal(err)
		}
		f.Close()
		want = append(want, c.Name)
	}
	targets := map[int]io.WriterAt{}
	var files []*os.File
	for _, d := range h.Devices {
		name := d.TempFileName()
		if name == "" {
			name = d.FileName()
		}
		f := create(name)
		if err := f.Truncate(d.Size); err != nil {
			t.Fatal(err)
		}
		targets[d.ID] = f
		files = append(files, f)
		want = append(want, d.FileName())
	}
	err := vma.Extract(ctx, r, targets)
	for _, f := range files {
		f.Close()
	}
	if err != nil {
		var fe *vma.FormatError
		if !errors.As(err, &fe) {
			t.Fatalf("Extract failed with %v, not a FormatError", err)
		}
		return nil, err
	}
	for _, d := range h.Devices {
		if tmp := d.TempFileName(); tmp != "" {
			// Link, as unpack commits: it fails rather than replace a file.
			if err := os.Link(filepath.Join(dir, tmp), filepath.Join(dir, d.FileName())); err != nil {
				t.Fatalf("CheckNames passed the names, yet: %v", err)
			}
			os.Remove(filepath.Join(dir, tmp))
		}
	}
	for _, c := range h.Configs {
		if b, err := os.ReadFile(filepath.Join(dir, c.Name)); err != nil || !bytes.Equal(b, c.Data) {
			t.Fatalf("config %q reads back as %d bytes (%v), want %d", c.Name, len(b), err, len(c.Data))
		}
	}
	return want, nil
}
