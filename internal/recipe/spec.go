package recipe

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vmatool/vmatool/internal/pveconf"
	"github.com/vmatool/vmatool/vma"
)

// Spec is what goes into an archive.
type Spec struct {
	// Configs are stored in this order, under their base names
	// (ReadConfigs reads them from files).
	Configs []vma.Config
	// Disks become the archive's devices, in this order.
	Disks []Disk
	// VMID names the archive (Pack.Name) and the volumes of a generated
	// config; 0 means 100, the lowest id Proxmox gives a guest.
	VMID int
	// Storage is named in generated drive and #qmdump#map lines;
	// "" means local-lvm. qmrestore --storage overrides it.
	Storage string
	// VM holds the settings of the qemu-server.conf generated when
	// Configs has none (see pveconf.Generate); nil means its defaults
	// with a serial console.
	VM *pveconf.VMOptions
	// Verbatim follows Proxmox's "vma create": a disk's Name is the VMA
	// device name as it is, configs are stored byte for byte, and no
	// config is generated or given map lines.
	Verbatim bool
}

// Disk is one disk image to pack.
type Disk struct {
	// Name is a drive key ("scsi0") or its device name ("drive-scsi0");
	// "" takes the lowest scsiN no other disk uses. With Spec.Verbatim it
	// is the device name as it is.
	Name string
	// Path is the image file or block device.
	Path string
	// Format is "raw", "qcow2", or "" to tell by content: qcow2 by its
	// magic, else raw; a VMA archive is refused (ErrArchive).
	Format string
	// DataFile is the external data file of a qcow2 image that keeps its
	// data apart. The name stored in the image is never opened: it comes
	// from an untrusted header.
	DataFile string
}

// SpecError is a mistake in what the caller asked for (a disk name, a
// data file that belongs to no disk, a VM setting), as opposed to a file
// that cannot be read or is malformed.
type SpecError struct {
	Msg string
	// Err is the underlying error, if any: a *pveconf.OptionError for a
	// refused VM setting or storage.
	Err error
}

func (e *SpecError) Error() string { return e.Msg }

// Unwrap returns Err, for errors.Is and errors.As.
func (e *SpecError) Unwrap() error { return e.Err }

func specErrorf(format string, args ...any) error {
	return &SpecError{Msg: fmt.Sprintf(format, args...)}
}

// ParseDisks reads [NAME=]PATH arguments. A prefix before '=' counts as a
// name only if it is a drive name (scsi0, drive-virtio1, ...), so paths
// with '=' still work; a prefix that is neither a drive name nor part of
// an existing path is refused. Unnamed disks take the lowest free scsiN,
// as vzdump numbers them.
func ParseDisks(args []string) ([]Disk, error) {
	used := map[string]bool{}
	disks := make([]Disk, len(args))
	for i, a := range args {
		disks[i].Path = a
		if k, p, ok := strings.Cut(a, "="); ok {
			key, _, perr := pveconf.ParseDriveName(k)
			if perr == nil {
				if used[key] {
					return nil, specErrorf("disk name %s used twice", key)
				}
				disks[i].Name, disks[i].Path, used[key] = key, p, true
			} else if _, serr := os.Stat(a); serr != nil && !strings.Contains(k, "/") {
				return nil, &SpecError{Msg: perr.Error()} // a name, not part of a path
			}
		}
		if disks[i].Path == "" {
			return nil, specErrorf("disk %q has an empty path", a)
		}
	}
	assignNames(disks, used)
	return disks, nil
}

// assignNames gives each unnamed disk the lowest scsiN not in used.
func assignNames(disks []Disk, used map[string]bool) {
	next := 0
	for i := range disks {
		if disks[i].Name != "" {
			continue
		}
		for used["scsi"+strconv.Itoa(next)] {
			next++
		}
		disks[i].Name = "scsi" + strconv.Itoa(next)
		used[disks[i].Name] = true
	}
}

// ReadConfigs reads config files to store under their base names, as
// vzdump and "vma create" store them. An error is the file's own, which
// names it.
func ReadConfigs(paths ...string) ([]vma.Config, error) {
	cfgs := make([]vma.Config, 0, len(paths))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		cfgs = append(cfgs, vma.Config{Name: filepath.Base(p), Data: data})
	}
	return cfgs, nil
}
