package pveconf_test

import (
	"fmt"
	"log"

	"github.com/vmatool/vmatool/internal/pveconf"
)

// Generate the config of a UEFI VM with a data disk on another bus and two
// network devices. The EFI vars disk is not among the archive's devices,
// so Proxmox creates it after the restore, as does the MAC address of the
// device that has none.
func ExampleGenerate() {
	web, err := pveconf.ParseNet("net0=virtio,bridge=vmbr0,tag=20")
	if err != nil {
		log.Fatal(err)
	}
	g, err := pveconf.Generate(120, pveconf.VMOptions{
		Name: "web-1",
		BIOS: "ovmf",
		Nets: []pveconf.Net{web, {Bridge: "vmbr1", MACAddr: "bc:24:11:00:00:02", Firewall: true}},
	}, []pveconf.Drive{
		{Key: "scsi0", Storage: "local-lvm", Size: 8 << 30},
		{Key: "virtio1", Storage: "local-lvm", Size: 20 << 30},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(g.Config))
	fmt.Println(g.QMSetArgs(120))
	// Output:
	// bios: ovmf
	// boot: order=scsi0
	// cores: 1
	// memory: 1024
	// name: web-1
	// net0: virtio,bridge=vmbr0,tag=20
	// net1: virtio=bc:24:11:00:00:02,bridge=vmbr1,firewall=1
	// ostype: l26
	// scsi0: local-lvm:vm-120-disk-0,size=8G
	// scsihw: virtio-scsi-single
	// virtio1: local-lvm:vm-120-disk-1,size=20G
	// #qmdump#map:scsi0:drive-scsi0:local-lvm:raw:
	// #qmdump#map:virtio1:drive-virtio1:local-lvm:raw:
	// [qm set 120 --efidisk0 local-lvm:1,efitype=4m,pre-enrolled-keys=0 --net0 virtio,bridge=vmbr0,tag=20]
}
