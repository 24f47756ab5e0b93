package pvesim

import (
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/vmatool/vmatool/internal/pve/pvesim/qmrestore"
)

// listVolumes lists a storage's volumes: those kept in memory and, for a
// directory-backed storage, its files as backups. Called with s.mu held.
func (n *node) listVolumes(storageName string) []Volume {
	st := n.storage(storageName)
	if st == nil {
		return nil
	}
	var vols []Volume
	for _, v := range st.vols {
		vols = append(vols, *v)
	}
	if st.dir != "" {
		ents, _ := os.ReadDir(st.dir)
		for _, e := range ents {
			info, err := e.Info()
			if err != nil || !info.Mode().IsRegular() || strings.HasSuffix(e.Name(), ".part") {
				continue
			}
			volid := st.name + ":backup/" + e.Name()
			if st.vols[volid] != nil {
				continue
			}
			vols = append(vols, Volume{VolID: volid, Content: "backup", Format: backupFormat(volid),
				Size: info.Size(), CTime: info.ModTime().Unix(), VMID: backupVMID(volid)})
		}
	}
	sort.Slice(vols, func(i, j int) bool { return vols[i].VolID < vols[j].VolID })
	return vols
}

// findVolume finds volid ("storage:name") on a node; the returned volume
// is the stored one for in-memory volumes, a fresh one for files. Called
// with s.mu held.
func (s *Server) findVolume(nodeName, volid string) (*Volume, *storage) {
	n := s.node(nodeName)
	store, _, ok := strings.Cut(volid, ":")
	if n == nil || !ok {
		return nil, nil
	}
	st := n.storage(store)
	if st == nil {
		return nil, nil
	}
	if v := st.vols[volid]; v != nil {
		return v, st
	}
	for _, v := range n.listVolumes(store) {
		if v.VolID == volid {
			return &v, st
		}
	}
	return nil, nil
}

// volumePath is where a directory-backed volume lives; for others, where
// it would on a default dir storage.
func volumePath(st *storage, volid string) string {
	_, name, _ := strings.Cut(volid, ":")
	if st.dir != "" {
		if b, ok := strings.CutPrefix(name, "backup/"); ok {
			return filepath.Join(st.dir, b)
		}
	}
	if b, ok := strings.CutPrefix(name, "backup/"); ok {
		return "/var/lib/vz/dump/" + b
	}
	return "/var/lib/vz/" + name
}

func readDirVolume(st *storage, volid string) ([]byte, bool) {
	b, err := os.ReadFile(volumePath(st, volid))
	return b, err == nil
}

// dropVolume removes a volume from its storage on n, reporting whether it
// existed. Called with s.mu held.
func (s *Server) dropVolume(n *node, volid string) bool {
	v, st := s.findVolume(n.name, volid)
	if v == nil {
		return false
	}
	if st.vols[volid] != nil {
		delete(st.vols, volid)
		return true
	}
	return os.Remove(volumePath(st, volid)) == nil
}

// removeVolumesOf removes the disk images VM vmid owns on n. Called with
// s.mu held.
func (s *Server) removeVolumesOf(n *node, vmid int) {
	for _, st := range n.storages {
		for id, v := range st.vols {
			if v.VMID == vmid && v.Content == "images" {
				delete(st.vols, id)
			}
		}
	}
}

// diskVolID names the n-th disk of a VM the way the storage plugins do
// (qmrestore.DiskName).
func diskVolID(st *storage, vmid, n int, format string) string {
	return st.name + ":" + qmrestore.DiskName(st.typ, vmid, n, format)
}

// backupFormat derives Proxmox's format name ("vma.zst", ...) from a file
// name.
func backupFormat(volid string) string {
	if i := strings.LastIndex(volid, ".vma"); i >= 0 {
		return volid[i+1:]
	}
	return "unknown"
}

// backupVMID reads the VM ID out of vzdump-qemu-<vmid>-<date>.
func backupVMID(volid string) int {
	_, name, _ := strings.Cut(volid, "vzdump-qemu-")
	id, _, _ := strings.Cut(name, "-")
	n, _ := strconv.Atoi(id)
	return n
}

func storageRow(n *node, st *storage) map[string]any {
	avail := st.total - min(st.used, st.total)
	frac := 0.0
	if st.total > 0 {
		frac = float64(st.used) / float64(st.total)
	}
	return map[string]any{"storage": st.name, "type": st.typ, "content": strings.Join(st.content, ","),
		"active": 1, "enabled": 1, "shared": boolInt(st.shared), "total": st.total, "used": st.used,
		"avail": avail, "used_fraction": frac}
}

// storageList is GET /nodes/{node}/storage (pve-storage
// src/PVE/API2/Storage/Status.pm index), filtered by content.
func (s *Server) storageList(n *node, content string) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []map[string]any{}
	for _, st := range n.storages {
		if content == "" || st.holds(content) {
			out = append(out, storageRow(n, st))
		}
	}
	return out, nil
}

func (s *Server) storageStatus(n *node, name string) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := n.storage(name)
	if st == nil {
		return nil, errorf(http.StatusInternalServerError, "storage '%s' does not exist", name)
	}
	return storageRow(n, st), nil
}

func (s *Server) content(n *node, name, filter string) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n.storage(name) == nil {
		return nil, errorf(http.StatusInternalServerError, "storage '%s' does not exist", name)
	}
	out := []map[string]any{}
	for _, v := range n.listVolumes(name) {
		if filter != "" && v.Content != filter {
			continue
		}
		row := map[string]any{"volid": v.VolID, "content": v.Content, "format": v.Format, "size": v.Size, "ctime": v.CTime}
		if v.VMID > 0 {
			row["vmid"] = v.VMID
		}
		out = append(out, row)
	}
	return out, nil
}

// deleteVolume follows pve-storage src/PVE/API2/Storage/Content.pm delete:
// it always starts an "imgdel" task whose ID is "<owner>@<storage>" or
// "<storage>", and a missing file only logs a warning.
func (s *Server) deleteVolume(n *node, store, vol string) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	volid := vol
	if !strings.Contains(vol, ":") {
		volid = store + ":" + vol
	}
	if sid, _, _ := strings.Cut(volid, ":"); sid != store {
		return nil, errorf(http.StatusInternalServerError, "storage ID mismatch (%s != %s)", sid, store)
	}
	st := n.storage(store)
	if st == nil {
		return nil, errorf(http.StatusInternalServerError, "storage '%s' does not exist", store)
	}
	v, _ := s.findVolume(n.name, volid)
	id := store
	if v != nil && v.VMID > 0 {
		id = itoa(v.VMID) + "@" + store
	}
	t := s.newTask(n.name, "imgdel", id)
	t.finish = func() (string, []string) {
		if !s.dropVolume(n, volid) {
			return "OK", []string{"disk image '" + volumePath(st, volid) + "' does not exist"}
		}
		return "OK", []string{"Removed volume '" + volid + "'"}
	}
	return t.upid, nil
}
