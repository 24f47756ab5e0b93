package qmrestore

import (
	"regexp"
	"strconv"
	"strings"
)

// CloudInitSize is the size of a cloud-init drive
// (qemu-server src/PVE/QemuServer/Cloudinit.pm CLOUDINIT_DISK_SIZE).
const CloudInitSize = 4 << 20

// lvmExtent is the unit LVM allocates in (vgcreate's default physical
// extent), which lvcreate rounds every volume up to.
const lvmExtent = 4 << 20

// FileStorage reports whether a storage type keeps volumes as files in
// folders (pve-storage's plugins with a path), whose volume names carry the
// VM ID folder and the format suffix.
func FileStorage(typ string) bool {
	switch typ {
	case "dir", "nfs", "cifs", "glusterfs", "btrfs", "cephfs":
		return true
	}
	return false
}

// DiskName is the volume name of disk n of VM vmid as the storage plugins
// make it (pve-storage src/PVE/Storage/Plugin.pm): "vmid/vm-vmid-disk-n.fmt"
// on file storages, "vm-vmid-disk-n" on block storages.
func DiskName(typ string, vmid, n int, format string) string {
	name := "vm-" + strconv.Itoa(vmid) + "-disk-" + strconv.Itoa(n)
	if FileStorage(typ) {
		return strconv.Itoa(vmid) + "/" + name + "." + format
	}
	return name
}

// CloudInitName is the volume name of a VM's cloud-init drive:
// vm-VMID-cloudinit, with the format as suffix on file storages
// (qemu-server src/PVE/QemuServer.pm $restore_allocate_devices).
func CloudInitName(typ string, vmid int, format string) string {
	name := "vm-" + strconv.Itoa(vmid) + "-cloudinit"
	if FileStorage(typ) {
		return strconv.Itoa(vmid) + "/" + name + "." + format
	}
	return name
}

// FreeDisk is find_free_diskname's number (pve-storage
// src/PVE/Storage/Plugin.pm get_next_vm_diskname): the lowest n that no
// volume of the VM on storage has, in any format, as a disk or as a
// template's base disk.
func FreeDisk(n Node, typ, storage string, vmid int) int {
	formats := []string{"raw"}
	if FileStorage(typ) {
		formats = []string{"raw", "qcow2", "vmdk"}
	}
	for i := 0; ; i++ {
		taken := false
		for _, f := range formats {
			name := DiskName(typ, vmid, i, f)
			base := strings.Replace(name, "vm-", "base-", 1)
			if FileStorage(typ) {
				base = strings.Replace(name, "/vm-", "/base-", 1)
			}
			taken = taken || n.HasVolume(storage+":"+name) || n.HasVolume(storage+":"+base)
		}
		if !taken {
			return i
		}
	}
}

// AllocSize is the size of the volume a storage allocates for size bytes:
// vdisk_alloc takes whole KiB, and LVM rounds up to its extents.
func AllocSize(typ string, size int64) int64 {
	size = (size + 1023) / 1024 * 1024
	if typ == "lvm" || typ == "lvmthin" {
		size = (size + lvmExtent - 1) / lvmExtent * lvmExtent
	}
	return size
}

// ResolveFormat is resolve_format_hint (pve-storage src/PVE/Storage.pm):
// the format asked for if the storage can hold it, else its default. Only
// file storages hold other formats than raw.
func ResolveFormat(typ, format string) string {
	if FileStorage(typ) && (format == "qcow2" || format == "vmdk") {
		return format
	}
	return "raw"
}

// cloudInitRE is drive_is_cloudinit's pattern
// (qemu-server src/PVE/QemuServer/Drive.pm).
var cloudInitRE = regexp.MustCompile(`[:/](?:vm-\d+-)?cloudinit(?:\.(?:raw|cow|qcow|qed|qcow2|vmdk|cloop))?$`)

// IsCloudInit reports whether a drive's volume is a cloud-init drive.
func IsCloudInit(file string) bool { return cloudInitRE.MatchString(file) }

// volumePath is where a volume's data lives on a default install, for
// the map lines a restore prints: LVM under /dev/pve, ZFS under
// rpool/data, files under the storage's images folder.
func volumePath(typ, volid string) string {
	storage, name, _ := strings.Cut(volid, ":")
	switch {
	case typ == "lvm" || typ == "lvmthin":
		return "/dev/pve/" + name
	case typ == "zfspool":
		return "/dev/zvol/rpool/data/" + name
	case storage == "local":
		return "/var/lib/vz/images/" + name
	}
	return "/mnt/pve/" + storage + "/images/" + name
}

// NewDiskSize is the size create_disks gives a disk a config update
// creates: an EFI vars disk is a copy of the OVMF vars template for its
// efitype (default 2m: qemu-server src/PVE/QemuServer/Drive.pm), TPM
// state is 4 MiB (src/PVE/QemuServer.pm), any other disk SIZE GiB. The
// doubles write this size into the config on every storage, where
// create_efidisk (src/PVE/QemuServer/OVMF.pm) writes the volume's, which
// LVM rounds up to 4 MiB.
func NewDiskSize(key, opts string, gib float64) int64 {
	switch key {
	case "efidisk0":
		for _, o := range strings.Split(opts, ",") {
			if o == "efitype=4m" {
				return 528 << 10
			}
		}
		return 128 << 10
	case "tpmstate0":
		return 4 << 20
	}
	return int64(gib * (1 << 30))
}
