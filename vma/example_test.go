package vma_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/google/uuid"
	"github.com/vmatool/vmatool/vma"
)

// Pack a small disk into an archive, then read it back.
func Example() {
	disk := make([]byte, 192*1024) // three clusters
	copy(disk[70000:], "hello")

	var archive bytes.Buffer
	w, err := vma.NewWriter(&archive,
		vma.WithUUID(uuid.MustParse("00112233-4455-6677-8899-aabbccddeeff")),
		vma.WithCtime(time.Unix(1700000000, 0)))
	if err != nil {
		log.Fatal(err)
	}
	w.AddConfig("qemu-server.conf", []byte("memory: 512\n#qmdump#map:scsi0:drive-scsi0:local::\n"))
	id, err := w.AddDevice("drive-scsi0", int64(len(disk)))
	if err != nil {
		log.Fatal(err)
	}
	if err := w.WriteDisk(context.Background(), id, memDisk{disk}, nil); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	r, err := vma.NewReader(&archive)
	if err != nil {
		log.Fatal(err)
	}
	for _, d := range r.Header().Devices {
		fmt.Printf("device %d: %s, %d bytes\n", d.ID, d.Name, d.Size)
	}
	for {
		ext, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		for _, c := range ext.Clusters {
			fmt.Printf("cluster %d: mask %#04x\n", c.Index, c.Mask)
		}
	}
	// Output:
	// device 1: drive-scsi0, 196608 bytes
	// cluster 0: mask 0x0000
	// cluster 1: mask 0x0002
	// cluster 2: mask 0x0000
}
