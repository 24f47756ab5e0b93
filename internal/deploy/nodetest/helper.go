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
//	restore DIR NODE VMID STORAGE UNIQUE   restore the VMA on stdin
//	alloc DIR NODE STORAGE VMID KEY OPTS GIB   make a disk for qm set
//	zstd-head   zstd -dc of the archive's header only (DiscardData)
//
// Errors go to stderr as Proxmox's "die" prints them, with status 255.
func helperMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var err error
	switch {
	case len(args) == 6 && args[0] == "restore":
		err = restore(args[1:], stdin, stdout)
	case len(args) == 8 && args[0] == "alloc":
		err = alloc(args[1:], stdout)
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

// restore is what qmrestore does once the VM's config is locked: the
// archive's header replaces the config with "memory: 128", then package
// qmrestore makes the volumes and the config. A failure before the header
// leaves the config empty, after it "memory: 128", as restore_vma_archive
// leaves them.
func restore(args []string, stdin io.Reader, stdout io.Writer) error {
	dir, nodeName, vmidArg, storage, unique := args[0], args[1], args[2], args[3], args[4]
	vmid, err := strconv.Atoi(vmidArg)
	if err != nil {
		return err
	}
	conf := filepath.Join(dir, "nodes", nodeName, "qemu-server", vmidArg+".conf")
	n := &fileNode{dir: dir, node: nodeName}
	_, err = os.Stat(filepath.Join(dir, "countonly"))
	countOnly := err == nil
	res, err := qmrestore.Restore(context.Background(), stdin, n, qmrestore.Options{
		VMID: vmid, Storage: storage, Unique: unique == "1", SkipData: countOnly,
		Output: func(line string) { fmt.Fprintln(stdout, line) },
		AfterHeader: func(*vma.Header) error {
			// The header is read: the old config and disks are gone.
			n.removeVolumesOf(vmid)
			if err := os.WriteFile(conf, []byte("memory: 128\n"), 0o644); err != nil {
				return err
			}
			injected := filepath.Join(dir, "fail", "restore")
			if msg, err := os.ReadFile(injected); err == nil {
				os.Remove(injected)
				return errors.New(strings.TrimSpace(string(msg)))
			}
			return nil
		},
	})
	if errors.Is(err, qmrestore.ErrHeader) {
		os.WriteFile(conf, nil, 0o644)
		return fmt.Errorf("unable to restore VM %d - %v", vmid, err)
	}
	if err != nil {
		return err
	}
	if countOnly {
		if err := os.WriteFile(filepath.Join(dir, "received", vmidArg+".bytes"), []byte(strconv.FormatInt(res.Read, 10)+"\n"), 0o644); err != nil {
			return err
		}
	}
	if res.Firewall != nil {
		if err := os.WriteFile(filepath.Join(dir, "firewall", vmidArg+".fw"), res.Firewall, 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(conf, res.Config, 0o644)
}

// alloc makes the volume qm set creates for KEY given as STORAGE:GIB and
// prints its config value: the volume, then OPTS and its size sorted, as
// print_drive writes them.
func alloc(args []string, stdout io.Writer) error {
	dir, nodeName, storage, vmidArg, key, opts, gibArg := args[0], args[1], args[2], args[3], args[4], args[5], args[6]
	vmid, err := strconv.Atoi(vmidArg)
	if err != nil {
		return err
	}
	gib, err := strconv.ParseFloat(gibArg, 64)
	if err != nil {
		return err
	}
	n := &fileNode{dir: dir, node: nodeName}
	st, ok := n.Storage(storage)
	switch {
	case !ok:
		return fmt.Errorf("storage '%s' does not exist", storage)
	case !st.Images:
		return fmt.Errorf("storage '%s' does not support vm images", storage)
	}
	volid := storage + ":" + qmrestore.DiskName(st.Type, vmid, qmrestore.FreeDisk(n, st.Type, storage, vmid), "raw")
	size := qmrestore.NewDiskSize(key, opts, gib)
	if _, err := n.CreateVolume(volid, "raw", size); err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, qmrestore.DriveValue(volid, opts, size))
	return err
}

// fileNode is the stand-in node's storages: those of the cluster view
// (SetCluster) on this node, each volume a sparse file under
// images/<node>/<storage>/ holding the disk as the guest sees it.
type fileNode struct {
	dir, node string
}

func (n *fileNode) volumePath(volid string) string {
	storage, name, _ := strings.Cut(volid, ":")
	return filepath.Join(n.dir, "images", n.node, storage, filepath.FromSlash(name))
}

// Storage takes a storage the cluster view lacks as a block storage that
// holds images (tests name storages such as local-zfs freely), where a real
// node would refuse it.
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
	return qmrestore.Storage{Type: "zfspool", Images: true}, true
}

func (n *fileNode) HasVolume(volid string) bool {
	_, err := os.Stat(n.volumePath(volid))
	return err == nil
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

// removeVolumesOf removes the disks VM vmid owns on this node: its
// vm-VMID-* volumes and, on file storages, its folder.
func (n *fileNode) removeVolumesOf(vmid int) {
	id := strconv.Itoa(vmid)
	for _, pattern := range []string{"vm-" + id + "-*", id} {
		m, _ := filepath.Glob(filepath.Join(n.dir, "images", n.node, "*", pattern))
		for _, p := range m {
			os.RemoveAll(p)
		}
	}
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
