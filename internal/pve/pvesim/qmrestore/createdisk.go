package qmrestore

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// OVMF vars templates' sizes, which create_efidisk copies into a new EFI
// disk (qemu-server src/PVE/QemuServer/OVMF.pm get_ovmf_files, x86_64):
// OVMF_VARS.fd for the default (legacy 2 MiB) efitype, OVMF_VARS_4M.fd
// or OVMF_VARS_4M.ms.fd for efitype=4m (pve-edk2-firmware).
const (
	ovmfVarsSize   = 128 << 10
	ovmfVars4MSize = 528 << 10
)

// TPMStateSize is the fixed size of a TPM state volume (qemu-server
// src/PVE/QemuServer/Drive.pm TPMSTATE_DISK_SIZE).
const TPMStateSize = 4 << 20

// newDiskRE is NEW_DISK_RE (qemu-server src/PVE/QemuServer/Drive.pm): a
// drive value STORAGE:SIZE, SIZE in GiB, that asks for a new volume.
var newDiskRE = regexp.MustCompile(`^(([^/:\s]+):)?(\d+(\.\d+)?)$`)

// IsNewDisk reports whether a drive value asks for a new volume
// ("local-lvm:4,discard=on"), and returns its storage.
func IsNewDisk(value string) (storage string, ok bool) {
	file, _, _ := strings.Cut(value, ",")
	if m := newDiskRE.FindStringSubmatch(file); m != nil {
		return m[2], true
	}
	return "", false
}

// CreateDisk is create_disks (qemu-server src/PVE/API2/Qemu.pm) for a
// drive given as STORAGE:SIZE in a config update (POST/PUT
// /nodes/{node}/qemu/{vmid}/config, qm set): it allocates the volume, the
// lowest free vm-VMID-disk-N in the storage's default format (raw on
// every plugin, as storage.cfg sets no other), and returns the drive's
// new value as print_drive writes it, with the line create_disks prints.
// The size it records is:
//   - for efidisk0, the volume's as volume_size_info reads it back after
//     create_efidisk (src/PVE/QemuServer/OVMF.pm) allocated it for the
//     OVMF vars template: 128K, or 528K with efitype=4m, which LVM and
//     LVM-thin round up to 4M and ZFS and RBD to 1M (AllocSize);
//   - for tpmstate0, TPMStateSize, whatever SIZE says;
//   - for any other drive, SIZE GiB in whole KiB (PVE::Tools::convert_size
//     rounds up), not the volume's rounded size.
//
// The options follow the volume sorted by name, size among them
// (pve-common src/PVE/JSONSchema.pm print_property_string); "format" is
// dropped.
func CreateDisk(n Node, vmid int, key, value string) (newValue, line string, err error) {
	storage, ok := IsNewDisk(value)
	if !ok {
		return "", "", fmt.Errorf("%s: '%s' is no new disk", key, value)
	}
	if storage == "" {
		return "", "", fmt.Errorf("no storage ID specified (and no default storage)")
	}
	st, ok := n.Storage(storage)
	switch {
	case !ok:
		return "", "", fmt.Errorf("storage '%s' does not exist", storage)
	case !st.Images:
		return "", "", fmt.Errorf("storage '%s' does not support vm images", storage)
	}
	d := parseDrive(value)
	gib := strings.TrimPrefix(d.file, storage+":")
	kib, err := convertSize(gib, 20)
	if err != nil {
		return "", "", fmt.Errorf("%s: %v", key, err)
	}
	delete(d.opts, "format")
	alloc := kib << 10
	switch key {
	case "efidisk0":
		alloc = ovmfVarsSize
		if d.opts["efitype"] == "4m" {
			alloc = ovmfVars4MSize
		}
	case "tpmstate0":
		alloc = TPMStateSize
	}
	volid := storage + ":" + DiskName(st.Type, vmid, FreeDisk(n, st.Type, storage, vmid), "raw")
	size := AllocSize(st.Type, alloc)
	if _, err := n.CreateVolume(volid, "raw", size); err != nil {
		return "", "", err
	}
	if key != "efidisk0" {
		size = alloc
	}
	d.file = volid
	d.opts["size"] = FormatSize(size)
	newValue = d.String()
	return newValue, key + ": successfully created disk '" + newValue + "'", nil
}

// convertSize is PVE::Tools::convert_size from a count of 2^shift bytes
// to KiB, rounding up what is left over.
func convertSize(v string, shift uint) (int64, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("value '%s' is not a valid, positive number", v)
	}
	x := f * float64(int64(1)<<shift)
	k := int64(x)
	if x > float64(k) {
		k++
	}
	return k, nil
}
