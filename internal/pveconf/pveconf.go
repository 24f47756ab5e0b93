// Package pveconf knows the parts of Proxmox VE's VM config that an archive
// writer must get right: how drive keys map to VMA device names, the
// #qmdump#map lines qmrestore reads to place each disk, and the config of a
// VM made for disk images that come without one (Generate): its settings,
// network devices and drives, validated as Proxmox validates them, and the
// settings only a call after the restore can apply.
package pveconf

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// ConfigName is the config qmrestore requires in every archive.
const ConfigName = "qemu-server.conf"

// FirewallName is the optional firewall config vzdump stores.
const FirewallName = "qemu-server.fw"

var driveKey = regexp.MustCompile(`^(ide|sata|scsi|virtio|efidisk|tpmstate)(0|[1-9][0-9]*)$`)

// driveCount is how many drives of each bus a VM can have
// (qemu-server src/PVE/QemuServer/Drive.pm): a key beyond it is no drive
// Proxmox knows, and a restore would drop its line.
var driveCount = map[string]int{"ide": 4, "sata": 6, "scsi": 31, "virtio": 16, "efidisk": 1, "tpmstate": 1}

// validDriveKey reports whether key names a drive slot of a Proxmox VM.
func validDriveKey(key string) bool {
	m := driveKey.FindStringSubmatch(key)
	if m == nil {
		return false
	}
	n, err := strconv.Atoi(m[2])
	return err == nil && n < driveCount[m[1]]
}

// Drive is one disk as the config sees it.
type Drive struct {
	Key     string // config key, e.g. "scsi0"
	DevName string // VMA device name, e.g. "drive-scsi0"; Generate takes "" as DevName(Key)
	Storage string // storage the map line suggests; qmrestore --storage overrides it
	Format  string // "raw" (also for ""), unless the storage wants otherwise
	Size    int64  // bytes
}

// DevName returns the VMA device name vzdump uses for a drive key:
// drive-<key>, except TPM state, which is backed up as drive-tpmstate0-backup.
func DevName(key string) string {
	if strings.HasPrefix(key, "tpmstate") {
		return "drive-" + key + "-backup"
	}
	return "drive-" + key
}

// ParseDriveName accepts a device name ("drive-scsi0") or a bare key
// ("scsi0") and returns the key and the device name.
func ParseDriveName(name string) (key, devName string, err error) {
	key = strings.TrimSuffix(strings.TrimPrefix(name, "drive-"), "-backup")
	if !validDriveKey(key) {
		return "", "", fmt.Errorf("disk name %q: want a Proxmox drive key (scsi0-30, virtio0-15, sata0-5, ide0-3, efidisk0 or tpmstate0), optionally with the drive- prefix", name)
	}
	return key, DevName(key), nil
}

// MapLine is the line qmrestore needs to restore a device.
func MapLine(d Drive) string {
	format := d.Format
	if format == "" {
		format = "raw"
	}
	return fmt.Sprintf("#qmdump#map:%s:%s:%s:%s:", d.Key, d.DevName, d.Storage, format)
}

var mapLine = regexp.MustCompile(`^#qmdump#map:(\S+):(\S+):(\S*):(\S*):$`)

// EnsureMapLines returns conf with a #qmdump#map line for every drive that
// lacks one, appended at the end as vzdump does. It also reports drives
// whose key has no line in conf: qmrestore restores their data but attaches
// them nowhere.
func EnsureMapLines(conf []byte, drives []Drive) (out []byte, unattached []string) {
	text := string(conf)
	mapped := map[string]bool{}
	keys := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if m := mapLine.FindStringSubmatch(line); m != nil {
			mapped[m[2]] = true
		}
		if i := strings.IndexByte(line, ':'); i > 0 && !strings.HasPrefix(line, "#") {
			keys[line[:i]] = true
		}
		if strings.HasPrefix(line, "[") {
			break // snapshot sections follow; vzdump drops them
		}
	}
	var add strings.Builder
	for _, d := range drives {
		if !keys[d.Key] {
			unattached = append(unattached, d.Key)
		}
		if !mapped[d.DevName] {
			add.WriteString(MapLine(d) + "\n")
		}
	}
	if add.Len() == 0 {
		return conf, unattached // untouched, so repacking an archive is byte-exact
	}
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	return []byte(text + add.String()), unattached
}

// SizeString formats a disk size the way Proxmox writes it in drive lines
// (the largest unit that divides it: 10G, 512M, 136K).
func SizeString(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.suffix)
		}
	}
	return fmt.Sprintf("%d", n)
}
