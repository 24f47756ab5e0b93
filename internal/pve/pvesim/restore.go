package pvesim

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"strings"
	"time"

	"github.com/vmatool/vmatool/internal/pve/pvesim/qmrestore"
	"github.com/vmatool/vmatool/vma"
)

// decompressor is the command pve-storage src/PVE/Storage.pm
// decompressor_info puts before vma extract, by compression.
var decompressor = map[vma.Compression]string{vma.Zstd: "zstd -q -d -c", vma.Gzip: "zcat", vma.Lzop: "lzop -d -c"}

// openArchive opens a backup volume's archive, decompressed: a file of a
// directory-backed storage, or the bytes kept in memory.
func openArchive(st *storage, vol *Volume, path string) (*bufio.Reader, io.Closer, vma.Compression, error) {
	var r io.Reader = bytes.NewReader(vol.Data)
	if vol.Data == nil && st.dir != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, "", err
		}
		r = f
	}
	dr, comp, err := vma.Decompress(r)
	if err != nil {
		if c, ok := r.(io.Closer); ok {
			c.Close()
		}
		return nil, nil, "", err
	}
	return bufio.NewReaderSize(dr, 1<<20), readCloser{dr, r}, comp, nil
}

// restorePlaceholder is the restore of an archive that is no VMA: the
// tests of package pve restore a few placeholder bytes, so instead of
// failing on the magic as vma extract would, the simulator makes the VM it
// made before it read archives, one 2 GiB disk without data.
func (s *Server) restorePlaceholder(n *node, g *guest, req Restore, fail failure, willFail bool, log []string,
	fails func(string, []string) (string, []string)) (string, []string) {
	vmid := req.VMID
	log = append(log, "CFG: size: 453 name: qemu-server.conf", "DEV: dev_id=1 size: 2147483648 devname: drive-scsi0",
		"CTIME: Tue Jan  2 03:04:05 2024")
	s.removeVolumesOf(n, vmid)
	g.config = map[string]string{"memory": "128"}
	target := req.Storage
	if target == "" {
		target = "local-lvm"
	}
	tst := n.storage(target)
	switch {
	case tst == nil:
		return fails("storage '"+target+"' does not exist", log)
	case willFail:
		return fails(fail.exitStatus, append(log, fail.log...))
	}
	if s.onRestore != nil {
		s.mu.Unlock()
		err := s.onRestore(req)
		s.mu.Lock()
		if err != nil {
			return fails(err.Error(), log)
		}
	}
	volid := diskVolID(tst, vmid, 0, "raw")
	tst.vols[volid] = &Volume{VolID: volid, Content: "images", Format: "raw", Size: 2 << 30, VMID: vmid, CTime: time.Now().Unix()}
	g.config = map[string]string{"name": "restored-" + itoa(vmid), "memory": "2048", "boot": "order=scsi0",
		"scsi0": volid + ",size=2G", "scsihw": "virtio-scsi-single"}
	log = append(log, "map 'drive-scsi0' to '/dev/pve/vm-"+itoa(vmid)+"-disk-0' (write zeros = 0)",
		"progress 100% (read 2147483648 bytes, duration 1 sec)", "rescan volumes...")
	if req.Start {
		log = append(log, s.autostart(g)...)
	}
	return "OK", log
}

// isVMA reports whether an archive stream starts with the VMA magic.
func isVMA(r *bufio.Reader) bool {
	head, _ := r.Peek(len(vma.Magic))
	return string(head) == vma.Magic
}

// readCloser closes the decompressor, then the file under it, if any.
type readCloser struct {
	io.ReadCloser
	under io.Reader
}

func (r readCloser) Close() error {
	err := r.ReadCloser.Close()
	if c, ok := r.under.(io.Closer); ok {
		c.Close()
	}
	return err
}

// restoreNode is a node as package qmrestore sees it; a restore makes its
// volumes in memory, holding the disks' data. Its methods are called with
// s.mu held.
type restoreNode struct {
	s    *Server
	n    *node
	vmid int
}

func (r *restoreNode) Storage(name string) (qmrestore.Storage, bool) {
	st := r.n.storage(name)
	if st == nil {
		return qmrestore.Storage{}, false
	}
	return qmrestore.Storage{Type: st.typ, Images: st.holds("images")}, true
}

func (r *restoreNode) HasVolume(volid string) bool {
	v, _ := r.s.findVolume(r.n.name, volid)
	return v != nil
}

func (r *restoreNode) CreateVolume(volid, format string, size int64) (io.WriterAt, error) {
	name, _, _ := strings.Cut(volid, ":")
	st := r.n.storage(name)
	v := &Volume{VolID: volid, Content: "images", Format: format, Size: size, VMID: r.vmid, CTime: time.Now().Unix(), Data: make([]byte, size)}
	st.vols[volid] = v
	return memVolume{v}, nil
}

func (r *restoreNode) RemoveVolume(volid string) { r.s.dropVolume(r.n, volid) }

// memVolume writes into a volume's bytes.
type memVolume struct{ v *Volume }

func (m memVolume) WriteAt(p []byte, off int64) (int, error) { return copy(m.v.Data[off:], p), nil }
