package ptable_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log"

	"github.com/vmatool/vmatool/internal/ptable"
)

// Example reads the partition table of a disk. Any io.ReaderAt works: an
// *os.File, or a *qcow2.Image to read an image in place. This disk is a
// 16 MiB MBR disk with one bootable Linux partition, built in memory.
func Example() {
	disk := make([]byte, 16<<20)
	e := disk[446:]
	e[0], e[4] = 0x80, 0x83                      // bootable, Linux
	binary.LittleEndian.PutUint32(e[8:], 2048)   // first LBA
	binary.LittleEndian.PutUint32(e[12:], 30720) // sectors
	disk[510], disk[511] = 0x55, 0xaa

	t, err := ptable.Read(bytes.NewReader(disk), int64(len(disk)))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(t.Type)
	for _, p := range t.Partitions {
		fmt.Printf("%d: start %d size %d type %s (%s) bootable %v\n", p.Index, p.Start, p.Size, p.Type, p.TypeName, p.Bootable)
	}
	// Output:
	// mbr
	// 1: start 1048576 size 15728640 type 0x83 (Linux) bootable true
}
