package vma_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"os"

	"github.com/vmatool/vmatool/vma"
)

// ExampleWithSalvage recovers what is left of an archive cut short: the
// devices get every cluster that arrived, and Missing lists the rest.
func ExampleWithSalvage() {
	b, err := os.ReadFile("../testdata/vectors/v06-out-of-order.vma")
	if err != nil {
		log.Fatal(err)
	}
	cut := b[:377856] // the archive ends after its first extent
	r, err := vma.NewReader(bytes.NewReader(cut), vma.WithSalvage())
	if err != nil {
		log.Fatal(err) // a damaged header cannot be salvaged
	}
	targets := map[int]io.WriterAt{}
	for _, d := range r.Header().Devices {
		f, err := os.CreateTemp("", "salvage-*.raw")
		if err != nil {
			log.Fatal(err)
		}
		defer os.Remove(f.Name())
		defer f.Close()
		f.Truncate(d.Size)
		targets[d.ID] = f
	}
	if err := vma.Extract(context.Background(), r, targets); err != nil {
		log.Fatal(err)
	}
	for m := range r.Missing() {
		fmt.Printf("%s: %d bytes missing at %d\n", m.Name, m.Length, m.Start)
	}
	// Output:
	// drive-scsi0: 196608 bytes missing at 0
	// drive-scsi0: 65536 bytes missing at 262144
	// drive-scsi0: 65536 bytes missing at 458752
	// drive-scsi1: 65536 bytes missing at 0
	// drive-scsi1: 131072 bytes missing at 196608
}
