package qcow2_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/vmatool/vmatool/qcow2"
)

// onlyReaderAt hides every method but ReadAt, so New has to find the file
// size by probing.
type onlyReaderAt struct{ r io.ReaderAt }

func (o onlyReaderAt) ReadAt(p []byte, off int64) (int, error) { return o.r.ReadAt(p, off) }

// TestOpenReaderAt opens images through a bare io.ReaderAt, with the data
// file given as an io.ReaderAt too, and reads them whole.
func TestOpenReaderAt(t *testing.T) {
	fxs := map[string]fixture{}
	for _, fx := range loadManifest(t) {
		fxs[fx.Name] = fx
	}
	for _, tt := range []struct {
		image, dataFile string
	}{
		{"tail-zlib.qcow2", ""}, // not a multiple of 512 bytes long
		{"zstd-4k.qcow2", ""},
		{"extdata.qcow2", "extdata.data"},
		{"extdata-raw.qcow2", "extdata-raw.data"},
	} {
		t.Run(tt.image, func(t *testing.T) {
			var opts []qcow2.Option
			if tt.dataFile != "" {
				opts = append(opts, qcow2.WithDataFileReader(onlyReaderAt{bytes.NewReader(fixtureBytes(t, tt.dataFile))}))
			}
			img, err := qcow2.New(onlyReaderAt{bytes.NewReader(fixtureBytes(t, tt.image))}, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			all, err := io.ReadAll(io.NewSectionReader(img, 0, img.Size()))
			if err != nil || sha(all) != fxs[tt.image].SHA256 {
				t.Fatalf("ReadAll: %d bytes, %v, sha256 %s", len(all), err, sha(all))
			}
		})
	}
}

// TestInvalidOptions: each option checks its value, and Open and New
// refuse a bad one before touching the image.
func TestInvalidOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  qcow2.Option
	}{
		{"no workers", qcow2.WithWorkers(0)},
		{"no cache", qcow2.WithCacheSize(0)},
		{"negative depth", qcow2.WithMaxBackingDepth(-1)},
		{"unknown backing mode", qcow2.WithBacking(qcow2.RefuseBacking + 1)},
		{"unnamed data file", qcow2.WithDataFile("")},
		{"nil data file", qcow2.WithDataFileReader(nil)},
		{"nil opener", qcow2.WithBackingOpener(nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := qcow2.New(bytes.NewReader(fixtureBytes(t, "v3-64k.qcow2")), tc.opt); !errors.Is(err, qcow2.ErrInvalidOption) {
				t.Errorf("New: %v, want ErrInvalidOption", err)
			}
			if _, err := qcow2.Open("/nonexistent", tc.opt); !errors.Is(err, qcow2.ErrInvalidOption) {
				t.Errorf("Open: %v, want ErrInvalidOption", err)
			}
		})
	}
}
