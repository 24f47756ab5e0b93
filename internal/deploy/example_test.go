package deploy_test

import (
	"fmt"
	"time"

	"github.com/vmatool/vmatool/internal/deploy"
)

// A dry run: plan a deployment of an archive over a stream and print it.
// Run(ctx, plan, src, events) would carry it out.
func Example() {
	src, err := deploy.OpenSource("../../testdata/vectors/v01-single.vma.zst")
	if err != nil {
		panic(err)
	}
	t := deploy.DefaultTarget()
	t.Name, t.Host, t.VMID, t.Via, t.Start = "web1", "root@pve1", 120, deploy.ViaSSHStream, true
	plan, err := deploy.NewPlan(src, []deploy.Target{t}, deploy.Options{Now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)})
	if err != nil {
		panic(err)
	}
	fmt.Print(plan)
	// Output:
	// web1: VM 120 on root@pve1 via ssh-stream
	//   node: the host's own (its uname -n, read when connecting)
	//   storage: local-lvm
	//   1. check that ID 120 is free in the cluster (VMs and containers, pvesh over SSH)
	//   2. check that the node has zstd
	//   3. send the archive ../../testdata/vectors/v01-single.vma.zst and stream it over SSH into: zstd -dc | qmrestore - 120 --storage local-lvm
	//   4. start VM 120 (qm over SSH) as a step of its own, and confirm it started
	//   qemu-server.conf:
	//     boot: order=scsi0
	//     cores: 2
	//     memory: 2048
	//     name: single
	//     net0: virtio=BC:24:11:00:00:01,bridge=vmbr0
	//     ostype: l26
	//     agent: 1
	//     serial0: socket
	//     scsihw: virtio-scsi-pci
	//     scsi0: local-lvm:vm-100-disk-scsi0,size=1032K
	//     #qmdump#map:scsi0:drive-scsi0:local-lvm:raw:
}
