package recipe_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/vmatool/vmatool/internal/pveconf"
	"github.com/vmatool/vmatool/internal/recipe"
	"github.com/vmatool/vmatool/qcow2"
	"github.com/vmatool/vmatool/vma"
)

const (
	vectors = "../../testdata/vectors/"
	// demoImage is 64 MiB virtual, mostly unallocated; demoSHA256 is the
	// sha256 of its raw content (testdata/images/README.md).
	demoImage  = "../../testdata/images/nixos-demo.qcow2"
	demoSHA256 = "f117d6adc53a6715a6c6b83b6c0011cf40da739e0f8890c308a373beb789e765"
	// v01 is an archive Proxmox's vma wrote; packing its disk and config
	// again with its uuid and ctime gives the same bytes
	// (testdata/vectors/manifest.json).
	v01SHA256           = "4e1a7710bb6f8ff9970ccada70b6e59fe3a91f7655a8b7f6553e9529b77bcd21"
	v01DiskSHA256       = "37eb0478aa93c02e611fafff6856abeab0aa1f001068d0f1fcc00d085d826766"
	v01UUID             = "1bfe72c7323c4c2e8605714f6d9b8803"
	v01Ctime      int64 = 1795295584
)

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func compressed(t *testing.T, c vma.Compression, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := vma.Compress(&b, c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// extracted reads an archive and returns its configs and each device's
// content, by name.
func extracted(t *testing.T, archive []byte) (*vma.Header, map[string][]byte) {
	t.Helper()
	dr, _, err := vma.Decompress(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	defer dr.Close()
	r, err := vma.NewReader(dr)
	if err != nil {
		t.Fatal(err)
	}
	targets := map[int]io.WriterAt{}
	files := map[string]*os.File{}
	dir := t.TempDir()
	for _, d := range r.Header().Devices {
		f, err := os.Create(filepath.Join(dir, d.Name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(d.Size); err != nil {
			t.Fatal(err)
		}
		targets[d.ID], files[d.Name] = f, f
	}
	if err := vma.Extract(context.Background(), r, targets); err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for name, f := range files {
		b, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
	}
	return r.Header(), out
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestIdentify(t *testing.T) {
	v01 := readFile(t, vectors+"v01-single.vma")
	plainRaw := bytes.Repeat([]byte("disk"), 4096)
	for _, tc := range []struct {
		name   string
		data   []byte
		format string
		comp   vma.Compression
		err    error
	}{
		{"raw", plainRaw, recipe.FormatRaw, vma.None, nil},
		{"empty", nil, recipe.FormatRaw, vma.None, nil},
		{"qcow2", readFile(t, demoImage), recipe.FormatQcow2, vma.None, nil},
		{"vma", v01, recipe.FormatVMA, vma.None, nil},
		{"vma.zst", compressed(t, vma.Zstd, v01), recipe.FormatVMA, vma.Zstd, nil},
		{"vma.gz", compressed(t, vma.Gzip, v01), recipe.FormatVMA, vma.Gzip, nil},
		{"vma.lzo (Proxmox's lzop)", readFile(t, vectors+"v01-single.vma.lzo"), recipe.FormatVMA, vma.Lzop, nil},
		{"raw.zst", compressed(t, vma.Zstd, plainRaw), "", "", recipe.ErrCompressedImage},
		{"broken zstd", []byte("\x28\xb5\x2f\xfd garbage that is no frame"), "", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, "file", tc.data)
			src, err := recipe.Identify(p)
			if tc.format == "" {
				if err == nil {
					t.Fatalf("Identify = %+v, want an error", src)
				}
				if tc.err != nil && !errors.Is(err, tc.err) {
					t.Fatalf("error %v, want %v", err, tc.err)
				}
				if !strings.HasPrefix(err.Error(), p+": ") {
					t.Errorf("error %q does not start with the path", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := recipe.Source{Path: p, Format: tc.format, Compression: tc.comp, Size: int64(len(tc.data))}
			if *src != want {
				t.Errorf("Identify = %+v, want %+v", *src, want)
			}
			if src.Archive() != (tc.format == recipe.FormatVMA) {
				t.Errorf("Archive() = %v", src.Archive())
			}
		})
	}
}

func TestIdentifyWindow(t *testing.T) {
	// Proxmox's zstd archive needs a window above 1 KiB.
	p := vectors + "v01-single.vma.zst"
	_, err := recipe.Identify(p, vma.WithMaxWindow(1<<10))
	if !errors.Is(err, vma.ErrWindowTooLarge) {
		t.Fatalf("Identify with a 1 KiB window: %v, want ErrWindowTooLarge", err)
	}
}

// An archive given as a disk is refused, compressed or not, and so is
// packing nothing but an archive's bytes by mistake; an explicit format is
// taken at its word.
func TestOpenRefusesArchive(t *testing.T) {
	v01 := readFile(t, vectors+"v01-single.vma")
	for _, c := range []vma.Compression{vma.None, vma.Zstd, vma.Gzip} {
		t.Run(string(c), func(t *testing.T) {
			p := writeFile(t, "backup.vma", compressed(t, c, v01))
			_, err := recipe.Open(recipe.Spec{Disks: []recipe.Disk{{Path: p}}})
			var de *recipe.DiskError
			if !errors.Is(err, recipe.ErrArchive) || !errors.As(err, &de) || de.Path != p {
				t.Fatalf("Open = %v, want ErrArchive naming %s", err, p)
			}
			if !strings.Contains(err.Error(), "vmatool convert") {
				t.Errorf("error %q has no hint", err)
			}
		})
	}
	p := writeFile(t, "backup.vma", v01)
	d, err := recipe.OpenDisk(recipe.Disk{Path: p, Format: recipe.FormatRaw})
	if err != nil {
		t.Fatalf("OpenDisk with format raw: %v", err)
	}
	defer d.Close()
	if d.Disk.Size() != int64(len(v01)) {
		t.Errorf("size %d, want %d", d.Disk.Size(), len(v01))
	}
}

// Packing a compressed raw image packs its bytes, as before archives were
// looked for.
func TestOpenCompressedRawIsRaw(t *testing.T) {
	p := writeFile(t, "disk.raw.zst", compressed(t, vma.Zstd, bytes.Repeat([]byte{7}, 1<<16)))
	d, err := recipe.OpenDisk(recipe.Disk{Path: p})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Format != recipe.FormatRaw {
		t.Errorf("format %s, want raw", d.Format)
	}
}

// The Proxmox-compatible path: the disk and config of an archive Proxmox
// wrote, packed again verbatim with its uuid and ctime, give its bytes.
func TestVerbatimRepack(t *testing.T) {
	h, disks := extracted(t, readFile(t, vectors+"v01-single.vma"))
	dir := t.TempDir()
	confPath := filepath.Join(dir, h.Configs[0].Name)
	if err := os.WriteFile(confPath, h.Configs[0].Data, 0o644); err != nil {
		t.Fatal(err)
	}
	diskPath := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(diskPath, disks["drive-scsi0"], 0o644); err != nil {
		t.Fatal(err)
	}
	cfgs, err := recipe.ReadConfigs(confPath)
	if err != nil {
		t.Fatal(err)
	}
	pack, err := recipe.Open(recipe.Spec{Configs: cfgs, Disks: []recipe.Disk{{Name: "drive-scsi0", Path: diskPath}}, Verbatim: true},
		recipe.WithUUID(uuid.MustParse(v01UUID)), recipe.WithCtime(time.Unix(v01Ctime, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer pack.Close()
	var out bytes.Buffer
	if err := pack.WriteArchive(context.Background(), &out, vma.None, 0, nil); err != nil {
		t.Fatal(err)
	}
	if got := sum(out.Bytes()); got != v01SHA256 {
		t.Errorf("repacked archive sha256 %s, want %s", got, v01SHA256)
	}
	if got := sum(disks["drive-scsi0"]); got != v01DiskSHA256 {
		t.Errorf("disk sha256 %s, want %s", got, v01DiskSHA256)
	}
	if err := pack.WriteArchive(context.Background(), &out, vma.None, 0, nil); !errors.Is(err, recipe.ErrWritten) {
		t.Errorf("second WriteArchive: %v, want ErrWritten", err)
	}
}

// The vzdump path: a qcow2 image and a raw one, named and unnamed, with a
// user config that lacks a map line, compressed with zstd.
func TestPackImages(t *testing.T) {
	rawDisk := bytes.Repeat([]byte{0xa5}, 1<<20)
	rawPath := writeFile(t, "efi.raw", rawDisk)
	conf := writeFile(t, "qemu-server.conf", []byte("memory: 512\nscsi0: local-lvm:vm-120-disk-0,size=64M\n"))
	cfgs, err := recipe.ReadConfigs(conf)
	if err != nil {
		t.Fatal(err)
	}
	var chain []string
	pack, err := recipe.Open(recipe.Spec{
		Configs: cfgs,
		Disks:   []recipe.Disk{{Path: demoImage}, {Name: "drive-efidisk0", Path: rawPath}},
		VMID:    120,
		Storage: "tank",
	}, recipe.WithSourceDateEpoch(time.Unix(1700000000, 0)), recipe.WithChain(func(l string) { chain = append(chain, l) }))
	if err != nil {
		t.Fatal(err)
	}
	defer pack.Close()
	if len(chain) != 0 {
		t.Errorf("chain lines for images without backing files: %q", chain)
	}
	if got := []string{pack.Devices[0].Name, pack.Devices[0].Format, pack.Devices[1].Name, pack.Devices[1].Format}; strings.Join(got, " ") != "drive-scsi0 qcow2 drive-efidisk0 raw" {
		t.Errorf("devices %q", got)
	}
	if strings.Join(pack.Unattached, ",") != "efidisk0" {
		t.Errorf("Unattached = %q, want [efidisk0]", pack.Unattached)
	}
	wantConf := "memory: 512\nscsi0: local-lvm:vm-120-disk-0,size=64M\n" +
		"#qmdump#map:scsi0:drive-scsi0:tank:raw:\n#qmdump#map:efidisk0:drive-efidisk0:tank:raw:\n"
	if len(pack.Configs) != 1 || string(pack.Configs[0].Data) != wantConf {
		t.Errorf("configs %+v, want one with %q", pack.Configs, wantConf)
	}
	if pack.Size != 64<<20+1<<20 {
		t.Errorf("Size %d", pack.Size)
	}
	if got := pack.Name(vma.Zstd); got != "vzdump-qemu-120-"+time.Unix(1700000000, 0).Local().Format("2006_01_02-15_04_05")+".vma.zst" {
		t.Errorf("Name = %s", got)
	}
	var out bytes.Buffer
	var progress counter
	if err := pack.WriteArchive(context.Background(), &out, vma.Zstd, 0, &progress); err != nil {
		t.Fatal(err)
	}
	if progress.n != pack.Size {
		t.Errorf("progress counted %d, want %d", progress.n, pack.Size)
	}
	if pack.StoredBytes(1) != 1<<20 {
		t.Errorf("StoredBytes(efidisk) = %d, want %d", pack.StoredBytes(1), 1<<20)
	}
	h, disks := extracted(t, out.Bytes())
	if h.UUID != pack.UUID || h.Ctime.Unix() != 1700000000 {
		t.Errorf("header uuid %s ctime %d, pack says %s %d", h.UUID, h.Ctime.Unix(), pack.UUID, pack.Ctime.Unix())
	}
	if string(h.Configs[0].Data) != wantConf {
		t.Errorf("stored config %q", h.Configs[0].Data)
	}
	if got := sum(disks["drive-scsi0"]); got != demoSHA256 {
		t.Errorf("qcow2 disk sha256 %s, want %s", got, demoSHA256)
	}
	if !bytes.Equal(disks["drive-efidisk0"], rawDisk) {
		t.Error("raw disk differs")
	}
}

type counter struct{ n int64 }

func (c *counter) Update(n int64) { c.n += n }

// Without a qemu-server.conf one is generated; Spec.VM chooses its
// settings.
func TestGeneratedConfig(t *testing.T) {
	p := writeFile(t, "d.raw", make([]byte, 1<<16))
	pack, err := recipe.Open(recipe.Spec{Disks: []recipe.Disk{{Path: p}}})
	if err != nil {
		t.Fatal(err)
	}
	defer pack.Close()
	want := "boot: order=scsi0\ncores: 1\nmemory: 1024\nname: vm100\nnet0: virtio,bridge=vmbr0\nostype: l26\n" +
		"scsi0: local-lvm:vm-100-disk-0,size=64K\nscsihw: virtio-scsi-single\nserial0: socket\n#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:\n"
	if len(pack.Configs) != 1 || pack.Configs[0].Name != "qemu-server.conf" || string(pack.Configs[0].Data) != want {
		t.Errorf("configs %+v, want qemu-server.conf %q", pack.Configs, want)
	}
	// Without a MAC, Proxmox makes up one at every start until a config
	// update writes one down.
	if want := []pveconf.Setting{{Key: "net0", Value: "virtio,bridge=vmbr0"}}; !reflect.DeepEqual(pack.PostRestore, want) {
		t.Errorf("PostRestore = %+v, want %+v", pack.PostRestore, want)
	}

	for _, tc := range []struct {
		name   string
		spec   recipe.Spec
		option string
	}{
		{"storage", recipe.Spec{Disks: []recipe.Disk{{Path: p}}, Storage: "local\nbios: ovmf"}, "storage"},
		{"storage of a given config", recipe.Spec{Disks: []recipe.Disk{{Path: p}}, Storage: "a:b",
			Configs: []vma.Config{{Name: "qemu-server.conf", Data: []byte("memory: 512\n")}}}, "storage"},
		{"VM setting", recipe.Spec{Disks: []recipe.Disk{{Path: p}}, VM: &pveconf.VMOptions{Nets: []pveconf.Net{{Tag: 4095}}}}, "net0"},
		{"cloud-init slot", recipe.Spec{Disks: []recipe.Disk{{Name: "ide2", Path: p}}, VM: &pveconf.VMOptions{CloudInit: true}}, "ide2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := recipe.Open(tc.spec)
			var se *recipe.SpecError
			var oe *pveconf.OptionError
			if !errors.As(err, &se) || !errors.As(err, &oe) || oe.Option != tc.option {
				t.Errorf("Open = %v, want a *SpecError over an *OptionError for %s", err, tc.option)
			}
		})
	}
}

// A generated config for disks on three buses, plus the EFI vars the
// image brings, packed and read back: every device has exactly one map
// line, under its own key, and that key has a drive line; the disks come
// back as they went in; what the archive cannot hold is left to
// PostRestore.
func TestGeneratedConfigRoundTrip(t *testing.T) {
	contents := map[string][]byte{
		"drive-scsi0":    bytes.Repeat([]byte{1}, 1<<20),
		"drive-virtio1":  bytes.Repeat([]byte{2}, 2<<20),
		"drive-sata2":    bytes.Repeat([]byte{3}, 3<<20),
		"drive-efidisk0": bytes.Repeat([]byte{4}, 540672),
	}
	disks := []recipe.Disk{{Path: writeFile(t, "root.raw", contents["drive-scsi0"])},
		{Name: "virtio1", Path: writeFile(t, "data.raw", contents["drive-virtio1"])},
		{Name: "drive-sata2", Path: writeFile(t, "logs.raw", contents["drive-sata2"])},
		{Name: "efidisk0", Path: writeFile(t, "vars.raw", contents["drive-efidisk0"])}}
	vm := &pveconf.VMOptions{Name: "fleet-1", BIOS: "ovmf", TPM: true, CloudInit: true,
		Nets: []pveconf.Net{{Bridge: "vmbr0", Tag: 20}, {Bridge: "vmbr1", MACAddr: "bc:24:11:00:00:02", Firewall: true}}}
	pack, err := recipe.Open(recipe.Spec{Disks: disks, VMID: 130, Storage: "tank", VM: vm},
		recipe.WithSourceDateEpoch(time.Unix(1700000000, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer pack.Close()
	wantPost := []pveconf.Setting{{Key: "net0", Value: "virtio,bridge=vmbr0,tag=20"}, {Key: "tpmstate0", Value: "tank:1,version=v2.0"}}
	if !reflect.DeepEqual(pack.PostRestore, wantPost) {
		t.Errorf("PostRestore = %+v, want %+v", pack.PostRestore, wantPost)
	}
	var out bytes.Buffer
	if err := pack.WriteArchive(context.Background(), &out, vma.Zstd, 0, nil); err != nil {
		t.Fatal(err)
	}
	h, got := extracted(t, out.Bytes())
	conf, ok := h.Config("qemu-server.conf")
	if !ok {
		t.Fatalf("no qemu-server.conf in %+v", h.Configs)
	}
	mapRE := regexp.MustCompile(`^#qmdump#map:(\S+):(\S+):(\S*):(\S*):$`)
	keyOf := map[string]string{}  // device name -> drive key, from the map lines
	values := map[string]string{} // config key -> value
	for _, line := range strings.Split(strings.TrimSuffix(string(conf), "\n"), "\n") {
		if m := mapRE.FindStringSubmatch(line); m != nil {
			if _, dup := keyOf[m[2]]; dup {
				t.Errorf("%s mapped twice", m[2])
			}
			keyOf[m[2]] = m[1]
			if m[3] != "tank" || m[4] != "raw" {
				t.Errorf("map line %q: want storage tank, format raw", line)
			}
			continue
		}
		k, v, _ := strings.Cut(line, ": ")
		values[k] = v
	}
	if len(keyOf) != len(h.Devices) {
		t.Errorf("%d map lines for %d devices", len(keyOf), len(h.Devices))
	}
	for _, d := range h.Devices {
		key, ok := keyOf[d.Name]
		if !ok || "drive-"+key != d.Name {
			t.Errorf("device %s: map line key %q", d.Name, key)
			continue
		}
		want := fmt.Sprintf("size=%s", pveconf.SizeString(d.Size))
		if v := values[key]; !strings.HasPrefix(v, "tank:vm-130-disk-") || !strings.HasSuffix(v, want) {
			t.Errorf("drive line %s: %q, want tank:vm-130-disk-N,...,%s", key, v, want)
		}
		if !bytes.Equal(got[d.Name], contents[d.Name]) {
			t.Errorf("device %s: content differs", d.Name)
		}
	}
	for k, v := range map[string]string{"efidisk0": "tank:vm-130-disk-3,efitype=4m,pre-enrolled-keys=0,size=528K",
		"ide2": "tank:cloudinit,media=cdrom", "boot": "order=scsi0", "name": "fleet-1",
		"net0": "virtio,bridge=vmbr0,tag=20", "net1": "virtio=bc:24:11:00:00:02,bridge=vmbr1,firewall=1"} {
		if values[k] != v {
			t.Errorf("%s: %q, want %q", k, values[k], v)
		}
	}
	if _, ok := values["tpmstate0"]; ok {
		t.Error("tpmstate0 is in the config, naming a volume no restore makes")
	}
}

func TestIdentity(t *testing.T) {
	p := writeFile(t, "d.raw", make([]byte, 1<<16))
	now := time.Unix(1800000000, 5e8)
	fixed := uuid.MustParse("00112233-4455-6677-8899-aabbccddeeff")
	open := func(opts ...recipe.Option) *recipe.Pack {
		t.Helper()
		pack, err := recipe.Open(recipe.Spec{Disks: []recipe.Disk{{Path: p}}}, append(opts, recipe.WithNow(now))...)
		if err != nil {
			t.Fatal(err)
		}
		pack.Close()
		return pack
	}
	epoch := recipe.WithSourceDateEpoch(time.Unix(1700000000, 0))
	a, b := open(epoch), open(epoch)
	if a.UUID != b.UUID || a.Ctime.Unix() != 1700000000 {
		t.Errorf("under a source date epoch: uuids %s, %s, ctime %d", a.UUID, b.UUID, a.Ctime.Unix())
	}
	if c := open(recipe.WithSourceDateEpoch(time.Unix(1700000001, 0))); c.UUID == a.UUID {
		t.Error("another epoch gives the same uuid")
	}
	if c := open(); c.Ctime.Unix() != 1800000000 || c.UUID == open().UUID {
		t.Errorf("by default: ctime %d (want the clock's second), uuid %s repeats", c.Ctime.Unix(), c.UUID)
	}
	if c := open(epoch, recipe.WithCtime(time.Unix(5, 0))); c.Ctime.Unix() != 5 || c.UUID == open(epoch, recipe.WithCtime(time.Unix(5, 0))).UUID {
		t.Errorf("a fixed ctime wins over the epoch and the uuid is random: ctime %d", c.Ctime.Unix())
	}
	if c := open(epoch, recipe.WithUUID(fixed)); c.UUID != fixed || c.Ctime.Unix() != 1700000000 {
		t.Errorf("fixed uuid under an epoch: %s %d", c.UUID, c.Ctime.Unix())
	}
	_, err := recipe.Open(recipe.Spec{}, recipe.WithCtime(time.Unix(-1, 0)))
	var se *recipe.SpecError
	if !errors.As(err, &se) {
		t.Errorf("negative ctime: %v, want a *SpecError", err)
	}
}

func TestParseDisks(t *testing.T) {
	dir := t.TempDir()
	odd := filepath.Join(dir, "a=b.raw") // a path with '=' that is no drive name
	if err := os.WriteFile(odd, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	disks, err := recipe.ParseDisks([]string{"x.raw", "scsi0=y.raw", "drive-virtio1=z.qcow2", "w.raw", odd})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range disks {
		got = append(got, d.Name+"="+d.Path)
	}
	want := "scsi1=x.raw scsi0=y.raw virtio1=z.qcow2 scsi2=w.raw scsi3=" + odd
	if strings.Join(got, " ") != want {
		t.Errorf("ParseDisks = %q, want %q", got, want)
	}
	for _, bad := range [][]string{{"scsi0=a", "drive-scsi0=b"}, {"scsi0="}, {"nodrive=a.raw"}} {
		_, err := recipe.ParseDisks(bad)
		var se *recipe.SpecError
		if !errors.As(err, &se) {
			t.Errorf("ParseDisks(%q) = %v, want a *SpecError", bad, err)
		}
	}
}

func TestBackingModes(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.raw")
	if err := os.WriteFile(base, bytes.Repeat([]byte{1}, 1<<16), 0o644); err != nil {
		t.Fatal(err)
	}
	top := filepath.Join(dir, "top.qcow2")
	writeOverlay(t, top, "base.raw", 1<<16)
	var lines []string
	d, err := recipe.OpenDisk(recipe.Disk{Path: top}, recipe.WithChain(func(l string) { lines = append(lines, l) }))
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	want := top + " reads backing chain: " + top + " -> " + base + " (raw)"
	if len(lines) != 1 || lines[0] != want || len(d.Backing) != 1 {
		t.Errorf("chain lines %q, want [%q]; Backing %+v", lines, want, d.Backing)
	}
	_, err = recipe.OpenDisk(recipe.Disk{Path: top}, recipe.WithBacking(recipe.BackingMode(true, true)))
	if !errors.Is(err, qcow2.ErrBackingRefused) {
		t.Errorf("refused: %v", err)
	}
	d, err = recipe.OpenDisk(recipe.Disk{Path: top}, recipe.WithBacking(recipe.BackingMode(false, false)))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Disk.ReadAt(make([]byte, 512), 0); !errors.Is(err, qcow2.ErrBackingSkipped) {
		t.Errorf("read through a skipped backing file: %v", err)
	}
	if _, err := recipe.OpenDisk(recipe.Disk{Path: base, DataFile: "x"}); !errors.Is(err, recipe.ErrRawDataFile) {
		t.Errorf("data file for a raw image: %v", err)
	}
}

// writeOverlay makes a qcow2 image at path whose backing file is the raw
// image backing, named as it is (relative to path's folder).
func writeOverlay(t *testing.T, path, backing string, size int64) {
	t.Helper()
	qemuImg := requireTool(t, "qemu-img")
	cmd := exec.Command(qemuImg, "create", "-q", "-f", "qcow2", "-F", "raw", "-b", backing, path, strconv.FormatInt(size, 10))
	cmd.Dir = filepath.Dir(path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
}

func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("VMATOOL_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s not found and VMATOOL_REQUIRE_TOOLS=1: install it (Debian: apt-get install qemu-utils)", name)
	}
	t.Skipf("%s not found: skipping (install qemu-utils, or set VMATOOL_REQUIRE_TOOLS=1 to make this a failure)", name)
	return ""
}
