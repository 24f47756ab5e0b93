package remote_test

import (
	"context"
	"fmt"
	"os"

	"github.com/vmatool/vmatool/internal/remote"
)

func ExampleShellQuote() {
	fmt.Println(remote.ShellQuote("qmrestore", "/var/lib/vz/dump/it's $(here).vma", "100", "--storage", "local-lvm"))
	// Output: qmrestore '/var/lib/vz/dump/it'\''s $(here).vma' 100 --storage local-lvm
}

// The deploy path: upload an archive, then restore it on the node.
func ExampleClient_Upload() {
	ctx := context.Background()
	c, err := remote.Dial(ctx, remote.Config{
		User:           "root",
		Host:           "pve.example.org",
		IdentityFiles:  []string{"/home/me/.ssh/id_ed25519"},
		KnownHostsFile: "/home/me/.ssh/known_hosts",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	archive, err := os.Open("vzdump-qemu-100-2024_01_01-00_00_00.vma.zst")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer archive.Close()
	const dir, name = "/var/lib/vz/dump", "vzdump-qemu-100-2024_01_01-00_00_00.vma.zst"
	if err := c.Upload(ctx, archive, dir, name, nil); err != nil {
		fmt.Println(err)
		return
	}
	err = c.Run(ctx, []string{"qmrestore", dir + "/" + name, "100", "--storage", "local-lvm"}, nil, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Println(err)
	}
}
