package pve_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/vmatool/vmatool/internal/pve"
)

// Restore an uploaded archive as VM 100 and turn it into a template.
func Example() {
	ctx := context.Background()
	c, err := pve.New("pve.example.org", "root@pam!vmatool=00000000-0000-0000-0000-000000000000",
		pve.WithTLSFingerprint("AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"))
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := c.VMStatus(ctx, "pve", 100); !errors.Is(err, pve.ErrVMNotFound) {
		fmt.Println("VM 100 exists or the node cannot be asked:", err)
		return
	}
	upid, err := c.RestoreVM(ctx, "pve", pve.RestoreOptions{
		VMID:    100,
		Archive: "local:backup/vzdump-qemu-100-2024_01_02-03_04_05.vma.zst",
		Storage: "local-lvm",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := c.WaitTask(ctx, "pve", upid, 0); err != nil {
		fmt.Println(err) // for a failed task, includes the end of its log
		return
	}
	if upid, err = c.Template(ctx, "pve", 100); err == nil && !upid.IsZero() {
		_, err = c.WaitTask(ctx, "pve", upid, 0)
	}
	if err != nil {
		fmt.Println(err)
	}
}
