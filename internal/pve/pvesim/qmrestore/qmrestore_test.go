package qmrestore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/vmatool/vmatool/internal/pve/pvesim/qmrestore"
	"github.com/vmatool/vmatool/vma"
)

// memNode is a node whose volumes live in memory.
type memNode struct {
	storages map[string]qmrestore.Storage
	vols     map[string]*volume
}

type volume struct {
	format string
	data   []byte
}

func (v *volume) WriteAt(p []byte, off int64) (int, error) { return copy(v.data[off:], p), nil }

func newNode() *memNode {
	return &memNode{storages: map[string]qmrestore.Storage{
		"local":     {Type: "dir"},
		"local-lvm": {Type: "lvmthin", Images: true},
		"images":    {Type: "dir", Images: true},
		"tank":      {Type: "zfspool", Images: true},
	}, vols: map[string]*volume{}}
}

func (n *memNode) Storage(name string) (qmrestore.Storage, bool) {
	st, ok := n.storages[name]
	return st, ok
}

func (n *memNode) HasVolume(volid string) bool { return n.vols[volid] != nil }

func (n *memNode) CreateVolume(volid, format string, size int64) (io.WriterAt, error) {
	v := &volume{format: format, data: make([]byte, size)}
	n.vols[volid] = v
	return v, nil
}

func (n *memNode) RemoveVolume(volid string) { delete(n.vols, volid) }

func (n *memNode) volumes() []string {
	var ids []string
	for id := range n.vols {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestRestoreVector restores an archive Proxmox's own vma made (the
// manifest gives its disks' sha256) onto LVM-thin: the volumes are
// numbered in drive key order, sized in 4 MiB extents, hold the disks, and
// the config names them with the sizes rescan finds.
func TestRestoreVector(t *testing.T) {
	f, err := os.Open("../../../../testdata/vectors/v02-two-disks.vma")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := newNode()
	var out []string
	res, err := qmrestore.Restore(context.Background(), f, n, qmrestore.Options{VMID: 100, Output: func(l string) { out = append(out, l) }})
	if err != nil {
		t.Fatal(err)
	}
	want := `agent: 1
bios: ovmf
boot: order=scsi0
cores: 2
efidisk0: local-lvm:vm-100-disk-0,size=4M
memory: 2048
name: efi
net0: virtio=BC:24:11:00:00:01,bridge=vmbr0
ostype: l26
scsi0: local-lvm:vm-100-disk-1,size=4M
scsihw: virtio-scsi-pci
serial0: socket
`
	if string(res.Config) != want {
		t.Errorf("config:\n%s\nwant:\n%s", res.Config, want)
	}
	if got := strings.Join(res.Volumes, " "); got != "local-lvm:vm-100-disk-0 local-lvm:vm-100-disk-1" {
		t.Errorf("volumes %s", got)
	}
	for volid, d := range map[string]struct {
		size int
		sha  string
	}{
		"local-lvm:vm-100-disk-0": {540672, "033ec7eea789345de916145902da3210dcec240bd0cd6a8a89bb29e45096a64d"},
		"local-lvm:vm-100-disk-1": {1048576, "295f2adc0c764afe5ada5c9069f7126e815781b7bf6c575e60c84106a0032211"},
	} {
		v := n.vols[volid]
		if len(v.data) != 4<<20 || sha(v.data[:d.size]) != d.sha || bytes.Count(v.data[d.size:], []byte{0}) != len(v.data)-d.size {
			t.Errorf("%s: %d bytes, sha256 of the disk %s, want 4 MiB and %s, zeros after", volid, len(v.data), sha(v.data[:d.size]), d.sha)
		}
	}
	if sha(res.Firewall) != "698336885a55b451b56cf59df5cbce08d42efae13c793e0f711095d117c0178f" {
		t.Errorf("firewall config %q", res.Firewall)
	}
	text := strings.Join(out, "\n")
	for _, line := range []string{
		"CFG: size: 359 name: qemu-server.conf",
		"DEV: dev_id=1 size: 540672 devname: drive-efidisk0",
		"new volume ID is 'local-lvm:vm-100-disk-0'",
		"map 'drive-efidisk0' to '/dev/pve/vm-100-disk-0' (write zeros = 0)",
		"map 'drive-scsi0' to '/dev/pve/vm-100-disk-1' (write zeros = 0)",
		"progress 104% (read 1638400 bytes, duration 0 sec)",
		"rescan volumes...",
	} {
		if !strings.Contains(text, line+"\n") && !strings.HasSuffix(text, line) {
			t.Errorf("output lacks %q:\n%s", line, text)
		}
	}
	if fi, _ := f.Stat(); res.Read != fi.Size() {
		t.Errorf("read %d bytes of %d", res.Read, fi.Size())
	}
}

// archive writes a VMA with config conf and a device of each size, named
// drive-<key>, filled with its index.
func archive(t *testing.T, conf string, devs ...struct {
	name string
	size int64
}) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := vma.NewWriter(&b)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddConfig("qemu-server.conf", []byte(conf)); err != nil {
		t.Fatal(err)
	}
	var ids []int
	for _, d := range devs {
		id, err := w.AddDevice(d.name, d.size)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for i, d := range devs {
		for c := int64(0); c*vma.ClusterSize < d.size; c++ {
			if err := w.WriteCluster(ids[i], uint32(c), bytes.Repeat([]byte{byte(i + 1)}, vma.ClusterSize)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

type dev = struct {
	name string
	size int64
}

// TestRestoreConfig: what restore_update_config_line, the map lines and
// rescan make of an archive's config, case by case.
func TestRestoreConfig(t *testing.T) {
	const mapped = "#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:\n#qmdump#map:virtio1:drive-virtio1:local-lvm:qcow2:\n"
	two := []dev{{"drive-scsi0", 1 << 20}, {"drive-virtio1", 8 << 20}}
	for _, c := range []struct {
		name    string
		conf    string
		devs    []dev
		opts    qmrestore.Options
		taken   []string // volumes the node already has
		want    string   // the config, or a pattern when it starts with ^
		wantErr string
		vols    string
	}{{
		name: "dropped lines, sorted keys, size and format from the volume",
		conf: "name: web\nlock: backup\nparent: snap1\nscsi0: local-lvm:vm-7-disk-0,discard=on,format=raw,size=32G\nunused0: local-lvm:vm-7-disk-9\n" +
			"virtio1: local-lvm:vm-7-disk-1,iothread=1,size=8G\nmemory: 512\n#vzdump#map:x\n" + mapped,
		devs: two,
		want: "memory: 512\nname: web\nscsi0: local-lvm:vm-100-disk-0,discard=on,size=4M\nvirtio1: local-lvm:vm-100-disk-1,iothread=1,size=8M\n",
		vols: "local-lvm:vm-100-disk-0 local-lvm:vm-100-disk-1",
	}, {
		name: "--storage wins over the map lines; a file storage keeps qcow2 and names the folder",
		conf: "scsi0: local-lvm:vm-7-disk-0,size=1M\nvirtio1: local-lvm:vm-7-disk-1,size=8M\n" + mapped,
		devs: two,
		opts: qmrestore.Options{Storage: "images"},
		want: "scsi0: images:100/vm-100-disk-0.raw,size=1M\nvirtio1: images:100/vm-100-disk-1.qcow2,size=8M\n",
		vols: "images:100/vm-100-disk-0.raw images:100/vm-100-disk-1.qcow2",
	}, {
		name:  "the lowest free disk number",
		conf:  "scsi0: tank:vm-7-disk-0,size=1M\n#qmdump#map:scsi0:drive-scsi0:tank::\n",
		devs:  []dev{{"drive-scsi0", 1 << 20}},
		taken: []string{"tank:vm-100-disk-0", "tank:vm-100-disk-2"},
		want:  "scsi0: tank:vm-100-disk-1,size=1M\n",
		vols:  "tank:vm-100-disk-1",
	}, {
		name: "backup=0 becomes part of the description, encoded",
		conf: "#web server\nscsi0: local-lvm:vm-7-disk-0,size=1M\nscsi1: local-lvm:vm-7-disk-5,backup=0,size=8G\n#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:\n",
		devs: []dev{{"drive-scsi0", 1 << 20}},
		want: "#web server\n#scsi1%3A local-lvm%3Avm-7-disk-5,backup=0,size=8G\nscsi0: local-lvm:vm-100-disk-0,size=4M\n",
		vols: "local-lvm:vm-100-disk-0",
	}, {
		name: "the cloud-init drive is allocated anew, not restored",
		conf: "ide2: local-lvm:cloudinit,media=cdrom\nscsi0: local-lvm:vm-7-disk-0,size=1M\n#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:\n",
		devs: []dev{{"drive-scsi0", 1 << 20}},
		want: "ide2: local-lvm:vm-100-cloudinit,media=cdrom\nscsi0: local-lvm:vm-100-disk-0,size=4M\n",
		vols: "local-lvm:vm-100-cloudinit local-lvm:vm-100-disk-0",
	}, {
		name: "a mapped device without a drive line is unused",
		conf: "scsi0: local-lvm:vm-7-disk-0,size=1M\n" + mapped,
		devs: two,
		want: "scsi0: local-lvm:vm-100-disk-0,size=4M\nunused0: local-lvm:vm-100-disk-1\n",
		vols: "local-lvm:vm-100-disk-0 local-lvm:vm-100-disk-1",
	}, {
		name: "unique: new MAC addresses and SMBIOS UUID, and always a new vmgenid",
		conf: "net0: virtio=AA:BB:CC:DD:EE:FF,bridge=vmbr0,tag=20\nnet1: e1000,bridge=vmbr1\nsmbios1: uuid=11111111-2222-3333-4444-555555555555,manufacturer=bnhl\n" +
			"vmgenid: 11111111-2222-3333-4444-555555555555\nscsi0: local-lvm:vm-7-disk-0,size=1M\n#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:\n",
		devs: []dev{{"drive-scsi0", 1 << 20}},
		opts: qmrestore.Options{Unique: true},
		want: `^net0: virtio=BC:24:11:[0-9A-F:]{8},bridge=vmbr0,tag=20\nnet1: e1000,bridge=vmbr1\nscsi0: local-lvm:vm-100-disk-0,size=4M\n` +
			`smbios1: manufacturer=bnhl,uuid=[0-9a-f-]{36}\nvmgenid: [0-9a-f-]{36}\n$`,
		vols: "local-lvm:vm-100-disk-0",
	}, {
		name:    "a device without a map line",
		conf:    "scsi0: local-lvm:vm-7-disk-0,size=1M\n#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:\n",
		devs:    two,
		wantErr: "found no device mapping information for device 'drive-virtio1'",
	}, {
		name:    "a map line without its device",
		conf:    mapped,
		devs:    []dev{{"drive-scsi0", 1 << 20}},
		wantErr: "archive does not contain data for drive 'virtio1'",
	}, {
		name:    "no storage in the map line means local, which holds no images",
		conf:    "#qmdump#map:scsi0:drive-scsi0:::\n",
		devs:    []dev{{"drive-scsi0", 1 << 20}},
		wantErr: "Content type 'images' is not available on storage 'local'",
	}, {
		name:    "a storage the node lacks",
		conf:    mapped,
		devs:    two,
		opts:    qmrestore.Options{Storage: "nowhere"},
		wantErr: "storage 'nowhere' does not exist",
	}} {
		t.Run(c.name, func(t *testing.T) {
			n := newNode()
			for _, v := range c.taken {
				n.CreateVolume(v, "raw", 1<<20)
			}
			c.opts.VMID = 100
			res, err := qmrestore.Restore(context.Background(), bytes.NewReader(archive(t, c.conf, c.devs...)), n, c.opts)
			if c.wantErr != "" {
				if err == nil || err.Error() != c.wantErr {
					t.Fatalf("error %v, want %q", err, c.wantErr)
				}
				if len(n.vols) != len(c.taken) {
					t.Errorf("volumes left behind: %v", n.volumes())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(c.want, "^") {
				if !regexp.MustCompile(c.want).Match(res.Config) {
					t.Errorf("config:\n%s\ndoes not match %s", res.Config, c.want)
				}
			} else if string(res.Config) != c.want {
				t.Errorf("config:\n%s\nwant:\n%s", res.Config, c.want)
			}
			if got := strings.Join(res.Volumes, " "); got != c.vols {
				t.Errorf("volumes %s, want %s", got, c.vols)
			}
			for i, d := range c.devs {
				if i >= len(res.Volumes) || strings.Contains(res.Volumes[i], "cloudinit") {
					continue
				}
				v := n.vols[res.Volumes[i]]
				if !bytes.Equal(v.data[:d.size], bytes.Repeat([]byte{byte(i + 1)}, int(d.size))) {
					t.Errorf("%s does not hold %s", res.Volumes[i], d.name)
				}
			}
		})
	}
}

// TestRestoreFailures: a stream that is no VMA fails before the header
// (ErrHeader) and allocates nothing; a truncated one fails after the
// volumes were made and removes them; AfterHeader's error stops the
// restore before any volume.
func TestRestoreFailures(t *testing.T) {
	conf := "scsi0: local-lvm:vm-7-disk-0,size=1M\n#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:\n"
	a := archive(t, conf, dev{"drive-scsi0", 1 << 20})
	n := newNode()
	_, err := qmrestore.Restore(context.Background(), strings.NewReader("not an archive at all, but long enough to hold a header"), n, qmrestore.Options{VMID: 100})
	if !errors.Is(err, qmrestore.ErrHeader) || len(n.vols) != 0 {
		t.Errorf("not a VMA: %v, volumes %v", err, n.volumes())
	}
	_, err = qmrestore.Restore(context.Background(), bytes.NewReader(a[:len(a)-70000]), n, qmrestore.Options{VMID: 100})
	if err == nil || errors.Is(err, qmrestore.ErrHeader) || !strings.HasPrefix(err.Error(), "restore failed - ") || len(n.vols) != 0 {
		t.Errorf("truncated: %v, volumes %v", err, n.volumes())
	}
	injected := errors.New("injected")
	_, err = qmrestore.Restore(context.Background(), bytes.NewReader(a), n, qmrestore.Options{VMID: 100, AfterHeader: func(*vma.Header) error { return injected }})
	if !errors.Is(err, injected) || len(n.vols) != 0 {
		t.Errorf("AfterHeader: %v, volumes %v", err, n.volumes())
	}
	res, err := qmrestore.Restore(context.Background(), bytes.NewReader(a), n, qmrestore.Options{VMID: 100, SkipData: true})
	if err != nil || res.Read != int64(len(a)) || n.vols["local-lvm:vm-100-disk-0"] == nil || n.vols["local-lvm:vm-100-disk-0"].data[0] != 0 {
		t.Errorf("SkipData: %v, read %d of %d, volumes %v", err, res.Read, len(a), n.volumes())
	}
}
