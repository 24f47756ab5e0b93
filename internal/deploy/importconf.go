package deploy

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

var (
	// mapLineRE is vzdump's "#qmdump#map:KEY:DEVNAME:STORAGE:FORMAT:".
	mapLineRE = regexp.MustCompile(`^#qmdump#map:(\S+):(\S+):(\S*):(\S*):$`)
	// configLineRE is a "key: value" line as qemu-server src/PVE/QemuServer.pm
	// parse_vm_config reads it.
	configLineRE = regexp.MustCompile(`^([a-z][a-z_\-]*\d*):\s*(.+?)\s*$`)
	driveKeyRE   = regexp.MustCompile(`^(ide|scsi|virtio|sata|efidisk|tpmstate)\d+$`)
	unusedKeyRE  = regexp.MustCompile(`^unused\d+$`)
	netKeyRE     = regexp.MustCompile(`^net\d+$`)
	macRE        = regexp.MustCompile(`^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$`)
)

// mapLines returns the drive key of each device the config maps, by VMA
// device name.
func mapLines(conf []byte) map[string]string {
	keys := map[string]string{}
	for _, line := range strings.Split(string(conf), "\n") {
		if m := mapLineRE.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			keys[m[2]] = m[1]
		}
	}
	return keys
}

// noCreateKeys are config keys POST /nodes/{node}/qemu does not take:
// qemu-server src/PVE/QemuServer.pm json_config_properties leaves out the
// snapshot and runtime ones, and restore_update_config_line drops lock,
// parent and unusedN.
var noCreateKeys = map[string]bool{"lock": true, "parent": true, "snaptime": true, "vmstate": true,
	"runningmachine": true, "runningcpu": true, "running-nets-host-mtu": true, "meta": true, "digest": true}

// createParams turns a qemu-server.conf, as an archive holds it, into the
// parameters of the create call that imports the disks: the restore's
// own rewriting of the config (qemu-server src/PVE/QemuServer.pm
// restore_update_config_line), with each disk in imports (by drive key)
// becoming "STORAGE:0,import-from=VOLID" on storage. Snapshot sections
// are left out, as vzdump leaves them out. warn receives what could not
// be carried over.
func createParams(conf []byte, imports map[string]string, storage string, unique bool, warn func(string)) map[string]string {
	params := map[string]string{}
	var descr []string
	for _, line := range strings.Split(string(conf), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if strings.HasPrefix(line, "[") {
			break // snapshot, pending and special sections
		}
		if strings.HasPrefix(line, "#") {
			if !strings.HasPrefix(line, "#qmdump#") && !strings.HasPrefix(line, "#vzdump#") {
				descr = append(descr, decodeText(line[1:]))
			}
			continue
		}
		m := configLineRE.FindStringSubmatch(line)
		if m == nil {
			warn(fmt.Sprintf("config line %q is not key: value; left out", line))
			continue
		}
		key, value := m[1], m[2]
		switch {
		case key == "description":
			descr = append(descr, decodeText(value))
		case noCreateKeys[key] || unusedKeyRE.MatchString(key):
		case key == "template":
			if value == "1" {
				warn("the archive's config makes the VM a template; the import creates a plain VM (add --template to convert it)")
			}
		case driveKeyRE.MatchString(key):
			if v, ok := importDrive(key, value, imports, storage, warn); ok {
				params[key] = v
			} else if v == "" {
				// The restore keeps an excluded disk as a comment.
				descr = append(descr, line)
			}
		case netKeyRE.MatchString(key) && unique:
			params[key] = dropMAC(value)
		case key == "vmgenid":
			// The restore always makes a new generation ID; "1" asks the
			// create for one.
			if value != "0" {
				value = "1"
			}
			params[key] = value
		case key == "smbios1" && unique:
			if v := dropOption(value, "uuid"); v != "" {
				params[key] = v
			}
		default:
			params[key] = value
		}
	}
	if len(descr) > 0 {
		params["description"] = strings.TrimRight(strings.Join(descr, "\n"), " \t\n")
	}
	return params
}

// importDrive rewrites one drive line. It returns the new value and true,
// or ("", false) for a disk excluded from backup (backup=0), which the
// restore keeps only as a comment, or (value, false) for a line that must
// be left out.
func importDrive(key, value string, imports map[string]string, storage string, warn func(string)) (string, bool) {
	file, opts := splitDrive(value)
	if src, ok := imports[key]; ok {
		var kept []string
		for _, o := range opts {
			name, _, _ := strings.Cut(o, "=")
			// The restore drops format; size comes from the import.
			if name != "size" && name != "format" && name != "import-from" {
				kept = append(kept, o)
			}
		}
		// qemu-server src/PVE/API2/Qemu.pm check_drive_param wants these
		// spelled out for an import; the values are the defaults the VM
		// ran with when its config left them out
		// (src/PVE/QemuServer/Drive.pm).
		switch {
		case key == "efidisk0":
			kept = withDefault(kept, "efitype", "2m")
			kept = withDefault(kept, "pre-enrolled-keys", "0")
		case key == "tpmstate0":
			kept = withDefault(kept, "version", "v1.2")
		}
		return strings.Join(append([]string{storage + ":0", "import-from=" + src}, kept...), ","), true
	}
	if v, ok := optionValue(opts, "backup"); ok && isFalse(v) {
		return "", false
	}
	if v, _ := optionValue(opts, "media"); v == "cdrom" {
		// A cloud-init drive is made anew on the target storage.
		if strings.HasSuffix(file, "-cloudinit") || strings.HasSuffix(file, "-cloudinit.qcow2") {
			return storage + ":cloudinit,media=cdrom", true
		}
		return value, true
	}
	warn(fmt.Sprintf("%s refers to %s, which the archive does not hold; left out", key, file))
	return value, false
}

// splitDrive splits a drive value into its volume and its options. The
// volume is the first item, or the one named file= or volume=.
func splitDrive(value string) (file string, opts []string) {
	for i, item := range strings.Split(value, ",") {
		name, v, hasEq := strings.Cut(item, "=")
		switch {
		case i == 0 && !hasEq:
			file = item
		case name == "file" || name == "volume":
			file = v
		default:
			opts = append(opts, item)
		}
	}
	return file, opts
}

func optionValue(opts []string, name string) (string, bool) {
	for _, o := range opts {
		if n, v, _ := strings.Cut(o, "="); n == name {
			return v, true
		}
	}
	return "", false
}

func withDefault(opts []string, name, value string) []string {
	if _, ok := optionValue(opts, name); ok {
		return opts
	}
	return append(opts, name+"="+value)
}

func dropOption(value, name string) string {
	var kept []string
	for _, item := range strings.Split(value, ",") {
		if n, _, _ := strings.Cut(item, "="); n != name && item != "" {
			kept = append(kept, item)
		}
	}
	return strings.Join(kept, ",")
}

// dropMAC removes the MAC address from a net device, so that the create
// picks a new one, as the restore's unique option does.
func dropMAC(value string) string {
	items := strings.Split(value, ",")
	for i, item := range items {
		n, v, ok := strings.Cut(item, "=")
		switch {
		case n == "macaddr":
			items[i] = ""
		case ok && macRE.MatchString(v):
			items[i] = n
		}
	}
	var kept []string
	for _, it := range items {
		if it != "" {
			kept = append(kept, it)
		}
	}
	return strings.Join(kept, ",")
}

// isFalse reads a Proxmox boolean (pve-common src/PVE/JSONSchema.pm
// parse_boolean).
func isFalse(v string) bool {
	switch strings.ToLower(v) {
	case "0", "no", "off", "false":
		return true
	}
	return false
}

// decodeText undoes pve-common src/PVE/ParseUtils.pm encode_text, which
// writes descriptions with %XX escapes.
func decodeText(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(n))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// paramLines shows create parameters as config lines, sorted, for a plan.
func paramLines(params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		v := params[k]
		if k == "description" {
			v = strings.ReplaceAll(v, "\n", `\n`)
		}
		fmt.Fprintf(&b, "%s: %s\n", k, v)
	}
	return b.String()
}
