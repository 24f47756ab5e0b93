package pve_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/vmatool/vmatool/internal/pve"
)

// Restore an uploaded archive as VM 100 and turn it into a template,
// removing the VM again if that fails: a failed restore leaves its config.
func Example() {
	ctx := context.Background()
	tok, err := pve.LoadToken("", os.Getenv("PVE_TOKEN"))
	if err != nil {
		fmt.Println(err)
		return
	}
	c, err := pve.New("pve.example.org", tok,
		pve.WithTLSFingerprint("AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"))
	if err != nil {
		fmt.Println(err)
		return
	}
	upid, err := c.RestoreVM(ctx, "pve", pve.RestoreOptions{
		VMID:    100,
		Archive: "local:backup/vzdump-qemu-100-2024_01_02-03_04_05.vma.zst",
		Storage: "local-lvm",
	})
	if errors.Is(err, pve.ErrVMExists) {
		fmt.Println("VM 100 exists already")
		return
	} else if err != nil {
		fmt.Println(err)
		return
	}
	if _, err = c.WaitTask(ctx, upid, 0); err == nil {
		err = c.MakeTemplate(ctx, "pve", 100, 0)
	}
	if err != nil {
		fmt.Println(err) // for a failed task, includes the end of its log
		if upid, derr := c.DeleteVM(ctx, "pve", 100); derr == nil {
			c.WaitTask(ctx, upid, 0)
		}
	}
}
