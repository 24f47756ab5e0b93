package recipe_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"time"

	"github.com/google/uuid"
	"github.com/vmatool/vmatool/internal/recipe"
	"github.com/vmatool/vmatool/vma"
)

// Pack a qcow2 image into a zstd-compressed archive that qmrestore takes,
// as "vmatool pack" does: the format comes from the file's content, and
// the generated qemu-server.conf maps the disk.
func Example() {
	pack, err := recipe.Open(recipe.Spec{
		Disks: []recipe.Disk{{Name: "scsi0", Path: "../../testdata/images/nixos-demo.qcow2"}},
		VMID:  120,
	}, recipe.WithUUID(uuid.MustParse("00112233-4455-6677-8899-aabbccddeeff")), recipe.WithCtime(time.Unix(1700000000, 0)))
	if err != nil {
		log.Fatal(err)
	}
	defer pack.Close()
	for _, d := range pack.Devices {
		fmt.Printf("%s: %s image, %d bytes\n", d.Name, d.Format, d.Disk.Size())
	}
	fmt.Printf("%s: %q\n", pack.Configs[0].Name, bytes.SplitAfter(pack.Configs[0].Data, []byte("\n"))[9])

	var archive bytes.Buffer
	if err := pack.WriteArchive(context.Background(), &archive, vma.Zstd, 0, nil); err != nil {
		log.Fatal(err)
	}
	src, _, err := vma.Decompress(&archive)
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	r, err := vma.NewReader(src)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("uuid", r.Header().UUID, "ctime", r.Header().Ctime.Unix())
	// Output:
	// drive-scsi0: qcow2 image, 67108864 bytes
	// qemu-server.conf: "#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:\n"
	// uuid 00112233-4455-6677-8899-aabbccddeeff ctime 1700000000
}
