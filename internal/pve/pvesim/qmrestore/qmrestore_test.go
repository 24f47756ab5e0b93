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

// memNode is a node whose volumes live in memory, restoring one VM whose
// config is conf.
type memNode struct {
	storages map[string]qmrestore.Storage
	vols     map[string]*volume
	conf     []byte
	confs    []string // every config written, in order
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
	}, vols: map[string]*volume{}, conf: []byte("lock: create\n")}
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

func (n *memNode) Volumes() map[string]int64 {
	m := map[string]int64{}
	for id, v := range n.vols {
		m[id] = int64(len(v.data))
	}
	return m
}

func (n *memNode) Config() []byte { return n.conf }

func (n *memNode) SetConfig(conf []byte) error {
	n.conf = conf
	n.confs = append(n.confs, string(conf))
	return nil
}

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

// inCommand is how run_command reports an error of qemu-server's own while
// it reads vma extract's output (the default Options.Command).
const inCommand = "command 'set -o pipefail && vma extract -v -r /var/tmp/vzdumptmp.fifo - /var/tmp/vzdumptmp' failed: "

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
		taken: []string{"tank:vm-100-disk-0", "tank:vm-100-disk-2", "tank:vm-101-disk-1"},
		// rescan lists the VM's volumes no drive names, not another VM's.
		want: "scsi0: tank:vm-100-disk-1,size=1M\nunused0: tank:vm-100-disk-0\nunused1: tank:vm-100-disk-2\n",
		vols: "tank:vm-100-disk-1",
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
		wantErr: inCommand + "found no device mapping information for device 'drive-virtio1'",
	}, {
		name:    "a map line without its device",
		conf:    mapped,
		devs:    []dev{{"drive-scsi0", 1 << 20}},
		wantErr: inCommand + "archive does not contain data for drive 'virtio1'",
	}, {
		name:    "no storage in the map line means local, which holds no images",
		conf:    "#qmdump#map:scsi0:drive-scsi0:::\n",
		devs:    []dev{{"drive-scsi0", 1 << 20}},
		wantErr: inCommand + "Content type 'images' is not available on storage 'local'",
	}, {
		name:    "a storage the node lacks",
		conf:    mapped,
		devs:    two,
		opts:    qmrestore.Options{Storage: "nowhere"},
		wantErr: inCommand + "storage 'nowhere' does not exist",
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
				if len(n.confs) != 0 {
					t.Errorf("a failure in the backup hints wrote the config: %q", n.confs)
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

// TestRestoreFailures: vma dies of g_error, printing "vma: REASON", and
// run_command reports the signal (a lone vma) or bash's 133 (after a
// decompressor): on a stream that is no VMA or too short for a header
// (ErrHeader: nothing allocated, the config as it was), and on a
// truncated one, after the volumes were made, which are removed, the
// config left at "memory: 128". AfterHeader's error stops the restore
// before any volume.
func TestRestoreFailures(t *testing.T) {
	conf := "scsi0: local-lvm:vm-7-disk-0,size=1M\n#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:\n"
	a := archive(t, conf, dev{"drive-scsi0", 1 << 20})
	long := strings.Repeat("not an archive at all, ", 1000)
	for _, c := range []struct {
		name, input, command string
		header               bool
		line, err            string
	}{
		{"not a VMA", long, "", true, "vma: not a vma file - wrong magic number", inCommand + "got signal 5"},
		{"too short for a header", "VMA", "", true, "vma: can't read vma header - got EOF", inCommand + "got signal 5"},
		{"after a decompressor", "", "zstd -q -d -c /d/vzdump-qemu-1-x.vma.zst | vma extract -v -r /f - /t", true, "vma: can't read vma header - got EOF",
			"command 'set -o pipefail && zstd -q -d -c /d/vzdump-qemu-1-x.vma.zst | vma extract -v -r /f - /t' failed: exit code 133"},
		{"truncated", string(a[:len(a)-70000]), "", false, "vma: restore failed - ", inCommand + "got signal 5"},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := newNode()
			var out []string
			_, err := qmrestore.Restore(context.Background(), strings.NewReader(c.input), n,
				qmrestore.Options{VMID: 100, Command: c.command, Output: func(l string) { out = append(out, l) }})
			if err == nil || err.Error() != c.err || errors.Is(err, qmrestore.ErrHeader) != c.header || len(n.vols) != 0 {
				t.Errorf("error %v (ErrHeader %v), volumes %v; want %q", err, errors.Is(err, qmrestore.ErrHeader), n.volumes(), c.err)
			}
			text := strings.Join(out, "\n")
			if !strings.Contains(text, c.line) {
				t.Errorf("output lacks %q:\n%s", c.line, text)
			}
			wantConf := "lock: create\n"
			if !c.header {
				wantConf = "memory: 128\n"
				if !strings.Contains(text, "temporary volume 'local-lvm:vm-100-disk-0' successfully removed") {
					t.Errorf("output does not say the volume was removed:\n%s", text)
				}
			}
			if string(n.conf) != wantConf {
				t.Errorf("config %q, want %q", n.conf, wantConf)
			}
		})
	}
	n := newNode()
	injected := errors.New("injected")
	_, err := qmrestore.Restore(context.Background(), bytes.NewReader(a), n, qmrestore.Options{VMID: 100, AfterHeader: func(*vma.Header) error { return injected }})
	if !errors.Is(err, injected) || len(n.vols) != 0 || string(n.conf) != "memory: 128\n" {
		t.Errorf("AfterHeader: %v, volumes %v, config %q", err, n.volumes(), n.conf)
	}
	res, err := qmrestore.Restore(context.Background(), bytes.NewReader(a), n, qmrestore.Options{VMID: 100, SkipData: true})
	if err != nil || res.Read != int64(len(a)) || n.vols["local-lvm:vm-100-disk-0"] == nil || n.vols["local-lvm:vm-100-disk-0"].data[0] != 0 {
		t.Errorf("SkipData: %v, read %d of %d, volumes %v", err, res.Read, len(a), n.volumes())
	}
}

// TestRestoreOverVM: restoring over a VM (force) frees only the old disks
// at the drive keys the archive restores, once the backup hints passed;
// the config is "memory: 128" meanwhile; the old disks at other keys stay
// and rescan lists them as unused, while a CD-ROM and another VM's volume
// are left alone. The request's own keys win over the archive's.
func TestRestoreOverVM(t *testing.T) {
	conf := "name: new\nscsi0: local-lvm:vm-7-disk-0,size=1M\n#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:\n"
	a := archive(t, conf, dev{"drive-scsi0", 1 << 20})
	oldConf := "ide2: local:iso/x.iso,media=cdrom\nlock: create\nname: old\nscsi0: local-lvm:vm-100-disk-0,size=8M\n" +
		"scsi1: local-lvm:vm-100-disk-1,size=8M\nscsi2: local-lvm:vm-200-disk-0,size=8M\n"
	setup := func() *memNode {
		n := newNode()
		n.conf = []byte(oldConf)
		for _, v := range []string{"local-lvm:vm-100-disk-0", "local-lvm:vm-100-disk-1", "local-lvm:vm-200-disk-0"} {
			n.CreateVolume(v, "raw", 8<<20)
			n.vols[v].data[0] = 0xee
		}
		return n
	}
	n := setup()
	var out []string
	res, err := qmrestore.Restore(context.Background(), bytes.NewReader(a), n, qmrestore.Options{
		VMID: 100, Override: map[string]string{"name": "asked"}, Output: func(l string) { out = append(out, l) }})
	if err != nil {
		t.Fatal(err)
	}
	want := "name: asked\nscsi0: local-lvm:vm-100-disk-0,size=4M\nunused0: local-lvm:vm-100-disk-1\n"
	if string(res.Config) != want || string(n.conf) != want {
		t.Errorf("config:\n%s\nwant:\n%s", n.conf, want)
	}
	if len(n.confs) < 2 || n.confs[0] != "memory: 128\n" {
		t.Errorf("configs written: %q", n.confs)
	}
	if n.vols["local-lvm:vm-100-disk-0"].data[0] != 1 || n.vols["local-lvm:vm-100-disk-1"].data[0] != 0xee || n.vols["local-lvm:vm-200-disk-0"] == nil {
		t.Errorf("volumes %v: disk-0 should hold the archive's disk, disk-1 and VM 200's be kept", n.volumes())
	}
	if text := strings.Join(out, "\n"); !strings.Contains(text, "VM 100 add unreferenced volume 'local-lvm:vm-100-disk-1' as 'unused0' to config") {
		t.Errorf("output:\n%s", text)
	}

	// A storage the node lacks fails in the backup hints: nothing changes.
	n = setup()
	_, err = qmrestore.Restore(context.Background(), bytes.NewReader(a), n, qmrestore.Options{VMID: 100, Storage: "nowhere"})
	if err == nil || string(n.conf) != oldConf || len(n.vols) != 3 || n.vols["local-lvm:vm-100-disk-0"].data[0] != 0xee {
		t.Errorf("bad storage: %v, config %q, volumes %v", err, n.conf, n.volumes())
	}
}

// TestCreateDisk: the drive value and volume a config update makes of
// STORAGE:SIZE, as create_disks and each storage plugin make them.
func TestCreateDisk(t *testing.T) {
	n := newNode()
	n.storages["lvm"] = qmrestore.Storage{Type: "lvm", Images: true}
	n.storages["ceph"] = qmrestore.Storage{Type: "rbd", Images: true}
	n.CreateVolume("local-lvm:vm-100-disk-0", "raw", 4<<20)
	for _, c := range []struct {
		key, value string
		want       string
		volSize    int64
		err        string
	}{
		{"efidisk0", "local-lvm:1,efitype=4m,pre-enrolled-keys=1", "local-lvm:vm-100-disk-1,efitype=4m,pre-enrolled-keys=1,size=4M", 4 << 20, ""},
		{"efidisk0", "lvm:1,efitype=4m", "lvm:vm-100-disk-0,efitype=4m,size=4M", 4 << 20, ""},
		{"efidisk0", "tank:1,efitype=4m", "tank:vm-100-disk-0,efitype=4m,size=1M", 1 << 20, ""},
		{"efidisk0", "ceph:1,efitype=2m", "ceph:vm-100-disk-0,efitype=2m,size=1M", 1 << 20, ""},
		{"efidisk0", "images:1,efitype=4m,pre-enrolled-keys=0", "images:100/vm-100-disk-0.raw,efitype=4m,pre-enrolled-keys=0,size=528K", 528 << 10, ""},
		{"efidisk0", "images:1", "images:100/vm-100-disk-1.raw,size=128K", 128 << 10, ""},
		{"tpmstate0", "local-lvm:1,version=v2.0", "local-lvm:vm-100-disk-2,size=4M,version=v2.0", 4 << 20, ""},
		{"tpmstate0", "images:0.001,version=v1.2", "images:100/vm-100-disk-2.raw,size=4M,version=v1.2", 4 << 20, ""},
		{"scsi1", "local-lvm:0.001,format=raw,discard=on", "local-lvm:vm-100-disk-3,discard=on,size=1049K", 4 << 20, ""},
		{"scsi2", "tank:2", "tank:vm-100-disk-1,size=2G", 2 << 30, ""},
		{"scsi3", "nowhere:1", "", 0, "storage 'nowhere' does not exist"},
		{"scsi3", "local:1", "", 0, "storage 'local' does not support vm images"},
		{"scsi3", "1", "", 0, "no storage ID specified (and no default storage)"},
	} {
		got, line, err := qmrestore.CreateDisk(n, 100, c.key, c.value)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%s %s: error %v, want %q", c.key, c.value, err, c.err)
			}
			continue
		}
		volid, _, _ := strings.Cut(got, ",")
		switch {
		case err != nil:
			t.Errorf("%s %s: %v", c.key, c.value, err)
		case got != c.want || line != c.key+": successfully created disk '"+c.want+"'":
			t.Errorf("%s %s: %q, %q; want %q", c.key, c.value, got, line, c.want)
		case n.vols[volid] == nil || int64(len(n.vols[volid].data)) != c.volSize:
			t.Errorf("%s %s: volume %s missing or not %d bytes", c.key, c.value, volid, c.volSize)
		}
	}
}
