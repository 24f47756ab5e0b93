package vma_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/vmatool/vmatool/vma"
)

var errorKinds = map[string]error{
	"error: header checksum":   vma.ErrHeaderChecksum,
	"error: extent checksum":   vma.ErrExtentChecksum,
	"error: short extent":      vma.ErrShortExtent,
	"error: missing cluster":   vma.ErrMissingCluster,
	"error: not a VMA archive": vma.ErrNotVMA,
}

// unpacked is an archive read into memory.
type unpacked struct {
	hdr   *vma.Header
	disks map[string][]byte
}

func readVector(t *testing.T, file string) (*unpacked, error) {
	t.Helper()
	f, err := os.Open(filepath.Join(vectorDir, file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if b, err := io.ReadAll(f); err != nil {
		t.Fatal(err)
	} else if got, want := sha(b), fileSHA[file]; want != "" && got != want {
		t.Fatalf("%s: fixture sha256 %s, manifest %s", file, got, want)
	}
	f.Seek(0, io.SeekStart)
	dr, _, err := vma.Decompress(f)
	if err != nil {
		return nil, err
	}
	defer dr.Close()
	r, err := vma.NewReader(dr)
	if err != nil {
		return nil, err
	}
	targets := map[int]io.WriterAt{}
	mem := map[string]*memTarget{}
	for _, d := range r.Header().Devices {
		mt := &memTarget{b: make([]byte, d.Size)}
		targets[d.ID], mem[d.Name] = mt, mt
	}
	if err := vma.Extract(context.Background(), r, targets); err != nil {
		return nil, err
	}
	u := &unpacked{hdr: r.Header(), disks: map[string][]byte{}}
	for n, mt := range mem {
		u.disks[n] = mt.b
	}
	return u, nil
}

var fileSHA = map[string]string{}

func TestVectors(t *testing.T) {
	vectors := loadManifest(t)
	for _, v := range vectors {
		fileSHA[v.File] = v.FileSHA256
	}
	for _, v := range vectors {
		t.Run(v.File, func(t *testing.T) {
			u, err := readVector(t, v.File)
			if v.Expect != "ok" {
				kind, ok := errorKinds[v.Expect]
				if !ok {
					t.Fatalf("manifest expects %q, which this test does not know", v.Expect)
				}
				if !errors.Is(err, kind) {
					t.Fatalf("got error %v, want %v", err, kind)
				}
				var fe *vma.FormatError
				if !errors.As(err, &fe) {
					t.Fatalf("error %v is not a *FormatError with an offset", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.ReplaceAll(u.hdr.UUID.String(), "-", ""); got != *v.UUID {
				t.Errorf("uuid %s, want %s", got, *v.UUID)
			}
			if got := u.hdr.Ctime.Unix(); got != *v.Ctime {
				t.Errorf("ctime %d, want %d", got, *v.Ctime)
			}
			if len(u.hdr.Configs) != len(v.Configs) {
				t.Fatalf("%d configs, want %d", len(u.hdr.Configs), len(v.Configs))
			}
			for i, c := range v.Configs {
				got := u.hdr.Configs[i]
				if got.Name != c.Name || int64(len(got.Data)) != c.Size || sha(got.Data) != c.SHA256 {
					t.Errorf("config %d: %s (%d bytes, %s), want %s (%d, %s)", i, got.Name, len(got.Data), sha(got.Data), c.Name, c.Size, c.SHA256)
				}
			}
			if len(u.hdr.Devices) != len(v.Devices) {
				t.Fatalf("%d devices, want %d", len(u.hdr.Devices), len(v.Devices))
			}
			for i, d := range v.Devices {
				got := u.hdr.Devices[i]
				if got.Name != d.Name || got.Size != d.Size || got.ID != i+1 {
					t.Errorf("device %d: %+v, want %s size %d", i, got, d.Name, d.Size)
				}
				if s := sha(u.disks[d.Name]); s != d.SHA256 {
					t.Errorf("device %s: sha256 %s, want %s", d.Name, s, d.SHA256)
				}
			}
			if v.RepackIdentical {
				for _, workers := range []int{1, 2, 5} {
					b := repack(t, u, workers)
					if got := sha(b); got != v.FileSHA256 {
						t.Errorf("repack with %d workers: sha256 %s, want %s (len %d)", workers, got, v.FileSHA256, len(b))
					}
				}
				b := repackByCluster(t, u)
				if got := sha(b); got != v.FileSHA256 {
					t.Errorf("repack by WriteCluster: sha256 %s, want %s", got, v.FileSHA256)
				}
			}
		})
	}
}

func writerFor(t *testing.T, out io.Writer, u *unpacked, opts ...vma.WriterOption) *vma.Writer {
	t.Helper()
	w, err := vma.NewWriter(out, append(opts, vma.WithUUID(u.hdr.UUID), vma.WithCtime(u.hdr.Ctime))...)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range u.hdr.Configs {
		if err := w.AddConfig(c.Name, c.Data); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range u.hdr.Devices {
		if _, err := w.AddDevice(d.Name, d.Size); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// repack packs the unpacked disks again with WriteDisk.
func repack(t *testing.T, u *unpacked, workers int) []byte {
	var out bytes.Buffer
	w := writerFor(t, &out, u, vma.WithWorkers(workers))
	for _, d := range u.hdr.Devices {
		if err := w.WriteDisk(context.Background(), d.ID, memDisk{u.disks[d.Name]}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// repackByCluster packs with WriteCluster, one 64 KiB buffer at a time and
// garbage past each device's end, as Proxmox's vma create hands them over.
func repackByCluster(t *testing.T, u *unpacked) []byte {
	var out bytes.Buffer
	w := writerFor(t, &out, u)
	for _, d := range u.hdr.Devices {
		data := u.disks[d.Name]
		for c := int64(0); c < d.Clusters(); c++ {
			buf := bytes.Repeat([]byte{'Z'}, vma.ClusterSize)
			copy(buf, data[c*vma.ClusterSize:])
			if err := w.WriteCluster(d.ID, uint32(c), buf); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestFixedUUIDVector builds v05 from the inputs the format document gives,
// not from the archive itself.
func TestFixedUUIDVector(t *testing.T) {
	var out bytes.Buffer
	w, err := vma.NewWriter(&out, vma.WithUUID(uuid.MustParse("00112233-4455-6677-8899-aabbccddeeff")), vma.WithCtime(time.Unix(1700000000, 0)))
	if err != nil {
		t.Fatal(err)
	}
	conf := "memory: 512\nscsi0: local:100/vm-100-disk-0.raw,size=136K\n#qmdump#map:scsi0:drive-scsi0:local:raw:\n"
	if err := w.AddConfig("/some/dir/qemu-server.conf", []byte(conf)); err != nil {
		t.Fatal(err)
	}
	id, err := w.AddDevice("drive-scsi0", 139264)
	if err != nil {
		t.Fatal(err)
	}
	c0 := make([]byte, vma.ClusterSize)
	copy(c0, bytes.Repeat([]byte{'A'}, 4096))
	c2 := make([]byte, vma.ClusterSize)
	copy(c2, bytes.Repeat([]byte{'B'}, 8192))
	copy(c2[8192:], bytes.Repeat([]byte{'Z'}, 4096)) // past the device end: must be ignored
	for c, data := range [][]byte{c0, make([]byte, vma.ClusterSize), c2} {
		if err := w.WriteCluster(id, uint32(c), data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := sha(out.Bytes()), "a8af083010b408b3675f8aff19bd92ed808135bf4b1c267276f2ebc139a4129d"; got != want {
		t.Fatalf("sha256 %s, want %s (length %d, want 25600)", got, want, out.Len())
	}
}
