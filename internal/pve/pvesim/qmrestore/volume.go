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

// AllocSize is the size of the volume a storage allocates for size bytes,
// which volume_size_info then reports: vdisk_alloc takes whole KiB; LVM and
// LVM-thin round up to the volume group's 4 MiB extents (lvcreate --size /
// -V, pve-storage src/PVE/Storage/LVMPlugin.pm lvcreate,
// LvmThinPlugin.pm alloc_image); ZFS pads a zvol to whole MiB
// (ZFSPoolPlugin.pm zfs_create_zvol) and RBD sizes images in MiB, rounded
// up (RBDPlugin.pm alloc_image); a file is made as large as asked
// (Plugin.pm alloc_image, qemu-img create).
func AllocSize(typ string, size int64) int64 {
	size = (size + 1023) / 1024 * 1024
	switch typ {
	case "lvm", "lvmthin":
		size = (size + lvmExtent - 1) / lvmExtent * lvmExtent
	case "zfspool", "rbd":
		size = (size + 1<<20 - 1) / (1 << 20) * (1 << 20)
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
