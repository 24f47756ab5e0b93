package qcow2_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/vmatool/vmatool/qcow2"
)

// ExampleWriter converts an image to a zstd-compressed qcow2 image the
// safe way: into a temporary file that is renamed once it is complete.
// The source is a 1 MiB image with two zlib-compressed clusters; WriteFrom
// reads only those, since an *Image reports its holes.
func ExampleWriter() {
	gz, err := os.Open("../testdata/qcow2/tail-zlib.qcow2.gz")
	if err != nil {
		log.Fatal(err)
	}
	defer gz.Close()
	zr, err := gzip.NewReader(gz)
	if err != nil {
		log.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		log.Fatal(err)
	}
	src, err := qcow2.New(bytes.NewReader(b))
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()

	dir, err := os.MkdirTemp("", "qcow2-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "disk.qcow2")
	f, err := os.CreateTemp(dir, ".disk-*.qcow2")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	w, err := qcow2.NewWriter(f, src.Size(), qcow2.WithCompression(qcow2.CompressionZstd))
	if err != nil {
		log.Fatal(err)
	}
	defer w.Abort() // empties the file on any early return; nothing after Close
	if err := w.WriteFrom(context.Background(), src, nil); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		log.Fatal(err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		log.Fatal(err)
	}

	img, err := qcow2.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer img.Close()
	fmt.Println("size:", img.Size(), "compression:", img.Compression())
	ext, err := img.Extents(0, img.Size())
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range ext {
		fmt.Printf("%s [%d, %d)\n", e.State, e.Start, e.Start+e.Length)
	}
	buf := make([]byte, 4)
	if _, err := img.ReadAt(buf, 65536); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("bytes at 64 KiB: % x\n", buf)
	// Output:
	// size: 1048576 compression: zstd
	// compressed [0, 131072)
	// unallocated [131072, 1048576)
	// bytes at 64 KiB: 22 22 22 22
}
