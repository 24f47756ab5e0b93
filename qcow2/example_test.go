package qcow2_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"log"
	"os"

	"github.com/vmatool/vmatool/qcow2"
)

// Example opens an image, reads from it, and walks its data ranges the way
// a writer that skips holes does. The image is a 1 MiB disk with two
// compressed 64 KiB clusters, filled with 0x11 and 0x22 by qemu-io.
func Example() {
	f, err := os.Open("../testdata/qcow2/tail-zlib.qcow2.gz")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		log.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		log.Fatal(err)
	}

	// qcow2.Open(path) does the same for a file,
	// and finds its backing files.
	img, err := qcow2.New(bytes.NewReader(b))
	if err != nil {
		log.Fatal(err)
	}
	defer img.Close()
	fmt.Println("size:", img.Size(), "cluster size:", img.ClusterSize(), "compression:", img.Compression())

	buf := make([]byte, 4)
	if _, err := img.ReadAt(buf, 65536); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("bytes at 64 KiB: % x\n", buf)

	for off := int64(0); off < img.Size(); {
		start, end, err := img.NextData(off)
		if err != nil {
			log.Fatal(err)
		}
		if start == end {
			break // only zeros from off on
		}
		fmt.Printf("data in [%d, %d)\n", start, end)
		off = end
	}
	// Output:
	// size: 1048576 cluster size: 65536 compression: zlib
	// bytes at 64 KiB: 22 22 22 22
	// data in [0, 131072)
}
