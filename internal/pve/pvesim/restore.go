package pvesim

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/vmatool/vmatool/internal/pve/pvesim/qmrestore"
	"github.com/vmatool/vmatool/vma"
)

// archiveRE is the name archive_info (pve-storage src/PVE/Storage.pm)
// needs to know a backup's format and compression, BACKUP_EXT_RE_2 after
// a vzdump prefix.
var archiveRE = regexp.MustCompile(`^vzdump-(lxc|openvz|qemu)-.+\.(tgz|(tar|vma)(\.(gz|lzo|zst|bz2))?)$`)

// decompressor is the command decompressor_info puts before vma extract,
// by the file name's compression suffix.
var decompressor = map[string]string{"gz": "zcat", "lzo": "lzop -d -c", "zst": "zstd -q -d -c", "bz2": "bzcat -q"}

// codecOf is the codec that stands in for each decompressor.
var codecOf = map[string]vma.Compression{"gz": vma.Gzip, "lzo": vma.Lzop, "zst": vma.Zstd, "bz2": vma.Bzip2}

// openArchive opens a backup volume's archive as restore_file_archive does:
// the format and compression come from the file's name, never from its
// bytes (a .vma.zst whose bytes are no zstd frame fails in zstd, and vma
// then reads nothing), so a name archive_info does not know fails, inside
// the task. It returns the decompressed stream and the pipeline's text,
// "[DECOMPRESSOR PATH | ]vma extract -v -r FIFO PATH|- TMPDIR".
func openArchive(st *storage, vol *Volume, path string, pid int) (io.Reader, io.Closer, string, error) {
	m := archiveRE.FindStringSubmatch(filepath.Base(path))
	if m == nil {
		return nil, nil, "", errors.New("ERROR: couldn't determine archive info from '" + path + "'")
	}
	if m[3] != "vma" {
		// restore_tar_archive, which the simulator does not run: it
		// refuses a tar whose first file is not qemu-server.conf, as
		// every file a test stores here is.
		return nil, nil, "", errors.New("ERROR: file '" + path + "' does not look like a QemuServer vzdump backup")
	}
	var r io.Reader = bytes.NewReader(vol.Data)
	if vol.Data == nil && st.dir != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, "", err
		}
		r = f
	}
	closer := readCloser{io.NopCloser(r), r}
	tmp := "/var/tmp/vzdumptmp" + itoa(pid)
	vmaCmd := "vma extract -v -r " + tmp + ".fifo "
	comp := m[5]
	if comp == "" {
		return bufio.NewReaderSize(r, 1<<20), closer, vmaCmd + path + " " + tmp, nil
	}
	cmd := decompressor[comp] + " " + path + " | " + vmaCmd + "- " + tmp
	dr, got, err := vma.Decompress(r)
	if err != nil || got != codecOf[comp] {
		// The decompressor fails on bytes that are not its format and
		// writes nothing: vma finds no header.
		if err == nil {
			dr.Close()
		}
		return bytes.NewReader(nil), closer, cmd, nil
	}
	return bufio.NewReaderSize(dr, 1<<20), readCloser{dr, r}, cmd, nil
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
	g    *guest // the VM restored; nil for a config update
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
	v := &Volume{VolID: volid, Content: "images", Format: format, Size: size, VMID: r.vmid, CTime: time.Now().Unix()}
	st.vols[volid] = v
	return memVolume{v}, nil
}

func (r *restoreNode) RemoveVolume(volid string) { r.s.dropVolume(r.n, volid) }

func (r *restoreNode) Volumes() map[string]int64 {
	m := map[string]int64{}
	for _, st := range r.n.storages {
		for id, v := range st.vols {
			if v.Content == "images" {
				m[id] = v.Size
			}
		}
	}
	return m
}

func (r *restoreNode) Config() []byte { return qmrestore.FormatConfig(r.g.config) }

func (r *restoreNode) SetConfig(conf []byte) error {
	r.g.config = qmrestore.Settings(conf)
	return nil
}

// memVolume writes into a volume's bytes, which it makes on the first
// write: a volume nothing was written to holds no memory.
type memVolume struct{ v *Volume }

func (m memVolume) WriteAt(p []byte, off int64) (int, error) {
	if m.v.Data == nil {
		m.v.Data = make([]byte, m.v.Size)
	}
	return copy(m.v.Data[off:], p), nil
}
