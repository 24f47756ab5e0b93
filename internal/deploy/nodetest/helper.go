package nodetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vmatool/vmatool/internal/codec"
	"github.com/vmatool/vmatool/internal/pve/pvesim/qmrestore"
	"github.com/vmatool/vmatool/vma"
)

// helperName is the name under which a test binary acts as the node's
// restore: Start links it into the node's PATH, pointing at the running
// test binary, so the stand-in's qmrestore restores with package
// qmrestore, the code the API simulator's restore task runs, instead of a
// second restore written in shell, and needs no separate build.
const helperName = "nodetest-helper"

// The test binary is started under helperName by the stand-in's scripts;
// it then does the helper's work and exits before any test runs.
func init() {
	if filepath.Base(os.Args[0]) == helperName {
		os.Exit(helperMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
}

// helperMain runs one of the helper's commands:
//
//	restore DIR NODE VMID STORAGE UNIQUE COMMAND   restore the VMA on stdin
//	set-disk DIR NODE VMID KEY VALUE   make a disk for qm set
//	zstd-head   zstd -dc of the archive's header only (DiscardData)
//
// Errors go to stderr as Proxmox's "die" prints them, with status 255.
func helperMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var err error
	switch {
	case len(args) == 7 && args[0] == "restore":
		err = restore(args[1:], stdin, stdout)
	case len(args) == 6 && args[0] == "set-disk":
		err = setDisk(args[1:], stdout)
	case len(args) == 1 && args[0] == "zstd-head":
		err = zstdHead(stdin, stdout)
	default:
		err = fmt.Errorf("%s: unknown command %q", helperName, args)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 255
	}
	return 0
}

// restore is what qmrestore's task does once the VM's config is locked,
// with package qmrestore, which writes the config as restore_vma_archive
// does ("memory: 128" once the backup hints pass, then the restored one).
// The task's output, and on a failure create_vm's warning, go to stdout;
// the error goes to stderr alone, as the CLI's fork_worker prints a task's
// error (pve-common src/PVE/RESTEnvironment.pm tee_worker); remove_lock
// then takes the lock off a config the restore did not replace.
func restore(args []string, stdin io.Reader, stdout io.Writer) error {
	dir, nodeName, vmidArg, storage, unique, command := args[0], args[1], args[2], args[3], args[4], args[5]
	vmid, err := strconv.Atoi(vmidArg)
	if err != nil {
		return err
	}
	n := &fileNode{dir: dir, node: nodeName, vmid: vmid}
	_, err = os.Stat(filepath.Join(dir, "countonly"))
	countOnly := err == nil
	res, err := qmrestore.Restore(context.Background(), stdin, n, qmrestore.Options{
		VMID: vmid, Storage: storage, Unique: unique == "1", SkipData: countOnly, Command: command,
		Output: func(line string) { fmt.Fprintln(stdout, line) },
		AfterHeader: func(*vma.Header) error {
			injected := filepath.Join(dir, "fail", "restore")
			if msg, err := os.ReadFile(injected); err == nil {
				os.Remove(injected)
				return errors.New(strings.TrimSpace(string(msg)))
			}
			return nil
		},
	})
	if err != nil {
		n.removeLock()
		fmt.Fprintf(stdout, "error before or during data restore, some or all disks were not completely restored. VM %d state is NOT cleaned up.\n", vmid)
		return err
	}
	if countOnly {
		if err := os.WriteFile(filepath.Join(dir, "received", vmidArg+".bytes"), []byte(strconv.FormatInt(res.Read, 10)+"\n"), 0o644); err != nil {
			return err
		}
	}
	if res.Firewall != nil {
		return os.WriteFile(filepath.Join(dir, "firewall", vmidArg+".fw"), res.Firewall, 0o644)
	}
	return nil
}

// setDisk makes the volume qm set creates for KEY given as
// STORAGE:SIZE[,OPTS] and prints the drive's new value, with
// qmrestore.CreateDisk, as the API simulator's config update does.
func setDisk(args []string, stdout io.Writer) error {
	dir, nodeName, vmidArg, key, value := args[0], args[1], args[2], args[3], args[4]
	vmid, err := strconv.Atoi(vmidArg)
	if err != nil {
		return err
	}
	val, _, err := qmrestore.CreateDisk(&fileNode{dir: dir, node: nodeName, vmid: vmid}, vmid, key, value)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, val)
	return err
}

// fileNode is the stand-in node's storages, for VM vmid: those of the
// cluster view (SetCluster) on this node, each volume a sparse file under
// images/<node>/<storage>/ holding the disk as the guest sees it, and
// the VM's config file.
type fileNode struct {
	dir, node string
	vmid      int
}

func (n *fileNode) volumePath(volid string) string {
	storage, name, _ := strings.Cut(volid, ":")
	return filepath.Join(n.dir, "images", n.node, storage, filepath.FromSlash(name))
}

func (n *fileNode) configPath() string {
	return filepath.Join(n.dir, "nodes", n.node, "qemu-server", strconv.Itoa(n.vmid)+".conf")
}

// Storage looks a storage up in the cluster view's rows of this node: one
// the view lacks does not exist, as storage_config reports it.
func (n *fileNode) Storage(name string) (qmrestore.Storage, bool) {
	b, err := os.ReadFile(filepath.Join(n.dir, "cluster-storage.json"))
	if err != nil {
		return qmrestore.Storage{}, false
	}
	var rows []struct {
		Storage, Node, Content, Plugintype string
	}
	if err := json.Unmarshal([]byte("["+string(b)+"]"), &rows); err != nil {
		return qmrestore.Storage{}, false
	}
	for _, r := range rows {
		if r.Storage == name && r.Node == n.node {
			return qmrestore.Storage{Type: r.Plugintype, Images: strings.Contains(","+r.Content+",", ",images,")}, true
		}
	}
	return qmrestore.Storage{}, false
}

func (n *fileNode) HasVolume(volid string) bool {
	_, err := os.Stat(n.volumePath(volid))
	return err == nil
}

// Volumes lists the volumes of every storage of this node, with their
// sizes: the files under images/<node>/<storage>/, a folder level deep for
// file storages.
func (n *fileNode) Volumes() map[string]int64 {
	vols := map[string]int64{}
	root := filepath.Join(n.dir, "images", n.node)
	stores, _ := os.ReadDir(root)
	for _, st := range stores {
		base := filepath.Join(root, st.Name())
		filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return nil
			}
			rel, _ := filepath.Rel(base, p)
			vols[st.Name()+":"+filepath.ToSlash(rel)] = info.Size()
			return nil
		})
	}
	return vols
}

func (n *fileNode) CreateVolume(volid, format string, size int64) (io.WriterAt, error) {
	p := n.volumePath(volid)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(p)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil // closed as the helper exits, when the restore is over
}

func (n *fileNode) RemoveVolume(volid string) { os.Remove(n.volumePath(volid)) }

func (n *fileNode) Config() []byte {
	b, _ := os.ReadFile(n.configPath())
	return b
}

func (n *fileNode) SetConfig(conf []byte) error { return os.WriteFile(n.configPath(), conf, 0o644) }

// removeLock is remove_lock after a failed restore: a config that still
// has its "lock: create" is written back without it, sorted as
// write_config writes it; "memory: 128" has none, and stays.
func (n *fileNode) removeLock() {
	conf := n.Config()
	s := qmrestore.Settings(conf)
	if s["lock"] == "" {
		return
	}
	delete(s, "lock")
	n.SetConfig(qmrestore.FormatConfig(s))
}

// zstdHead decompresses the zstd stream on stdin only as far as the VMA
// header inside it, which it writes to stdout, then reads the rest
// without decoding it: the node's decompression costs next to nothing,
// and qmrestore still makes the VM from the archive's config.
func zstdHead(stdin io.Reader, stdout io.Writer) error {
	dec, _, err := codec.NewReader(stdin, codec.ReadOptions{Workers: 1})
	if err != nil {
		return err
	}
	_, err = vma.NewReader(io.TeeReader(dec, stdout))
	dec.Close()
	if err != nil {
		return err
	}
	_, err = qmrestore.Drain(stdin)
	return err
}
