package raw_test

import (
	"bytes"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/vmatool/vmatool/raw"
)

// Read only the data of a sparse image: the loop never touches its holes.
func Example() {
	dir, err := os.MkdirTemp("", "raw-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "disk.raw")
	// A 64 MiB image with 1 MiB written in the middle.
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	if err := f.Truncate(64 << 20); err != nil {
		log.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xab}, 1<<20), 32<<20); err != nil {
		log.Fatal(err)
	}
	f.Close()

	d, err := raw.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()

	var nonZero int
	buf := make([]byte, 1<<20)
	for off := int64(0); off < d.Size(); {
		start, end, err := d.NextData(off)
		if err != nil {
			log.Fatal(err)
		}
		for pos := start; pos < end; {
			n, err := d.ReadAt(buf[:min(int64(len(buf)), end-pos)], pos)
			if err != nil {
				log.Fatal(err)
			}
			nonZero += n - bytes.Count(buf[:n], []byte{0})
			pos += int64(n)
		}
		off = end
	}
	fmt.Printf("size %d MiB, non-zero bytes %d\n", d.Size()>>20, nonZero)
	// Output: size 64 MiB, non-zero bytes 1048576
}
