package qcow2_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/vmatool/vmatool/qcow2"
)

// onlyReaderAt hides every method but ReadAt, so Open has to find the file
// size by probing.
type onlyReaderAt struct{ r io.ReaderAt }

func (o onlyReaderAt) ReadAt(p []byte, off int64) (int, error) { return o.r.ReadAt(p, off) }

// TestOpenReaderAt opens images through a bare io.ReaderAt, with the data
// file given as an io.ReaderAt too, and streams them with Reader.
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
			opts := qcow2.Options{}
			if tt.dataFile != "" {
				opts.DataFile = onlyReaderAt{bytes.NewReader(fixtureBytes(t, tt.dataFile))}
			}
			img, err := qcow2.Open(onlyReaderAt{bytes.NewReader(fixtureBytes(t, tt.image))}, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			r := img.NewReader()
			all, err := io.ReadAll(r)
			if err != nil || sha(all) != fxs[tt.image].SHA256 {
				t.Fatalf("ReadAll: %d bytes, %v, sha256 %s", len(all), err, sha(all))
			}
			// Seek, then Read in small pieces and WriteTo the rest.
			if _, err := r.Seek(-5000, io.SeekEnd); err != nil {
				t.Fatal(err)
			}
			head := make([]byte, 1000)
			if _, err := io.ReadFull(r, head); err != nil {
				t.Fatal(err)
			}
			var rest bytes.Buffer
			if _, err := r.WriteTo(&rest); err != nil {
				t.Fatal(err)
			}
			if got := append(head, rest.Bytes()...); !bytes.Equal(got, all[len(all)-5000:]) {
				t.Fatal("Seek, Read and WriteTo give other bytes")
			}
			if n, err := r.Read(head); n != 0 || err != io.EOF {
				t.Fatalf("Read at the end = %d, %v", n, err)
			}
		})
	}
}
