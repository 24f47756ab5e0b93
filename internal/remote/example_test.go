package remote_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

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

// Reaching a node by its ~/.ssh/config alias, through a jump host. The
// caller supplies the home directory and user name; Resolve fills in what
// the flags (here the port) leave open.
func ExampleSSHConfig_Resolve() {
	home, err := os.MkdirTemp("", "home")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(home)
	config := filepath.Join(home, ".ssh", "config")
	os.Mkdir(filepath.Dir(config), 0o700)
	os.WriteFile(config, []byte(`Host pve1
    HostName 192.0.2.11
    User deploy
    Port 2022
    ProxyJump bastion

Host bastion
    HostName bastion.example.org
    Port 2222
`), 0o600)

	sc, err := remote.ReadSSHConfig(remote.SSHConfigOptions{
		UserFile: config, MissingOK: true,
		LocalUser: "me", Home: home, DefaultUser: "root",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg, err := sc.Resolve(remote.Config{Host: "pve1", Port: 22})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s@%s:%d\n", cfg.User, cfg.Host, cfg.Port)
	for _, j := range cfg.Jumps {
		fmt.Printf("via %s@%s:%d\n", j.User, j.Host, j.Port)
	}
	fmt.Println("known hosts:", filepath.Base(cfg.KnownHostsFile))
	// remote.Dial(ctx, cfg) would now connect through bastion.example.org.

	// Output:
	// deploy@192.0.2.11:22
	// via me@bastion.example.org:2222
	// known hosts: known_hosts
}
