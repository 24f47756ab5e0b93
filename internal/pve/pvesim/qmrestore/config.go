package qmrestore

import (
	"crypto/rand"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

var (
	// mapLineRE is the #qmdump#map line $parse_backup_hints reads.
	mapLineRE = regexp.MustCompile(`^#qmdump#map:(\S+):(\S+):(\S*):(\S*):$`)
	// cloudInitLineRE are the drive lines $parse_backup_hints looks at for
	// a cloud-init drive (not virtio: a cloud-init drive is a CD-ROM).
	cloudInitLineRE = regexp.MustCompile(`^((?:ide|sata|scsi)\d+):\s*(.*)\s*$`)
	// driveLineRE are the drive lines restore_update_config_line rewrites.
	driveLineRE  = regexp.MustCompile(`^((ide|scsi|virtio|sata|efidisk|tpmstate)\d+):\s*(\S+)\s*$`)
	netLineRE    = regexp.MustCompile(`^(net\d+):\s*(\S+)\s*$`)
	unusedLineRE = regexp.MustCompile(`^unused\d+:`)
	unusedKeyRE  = regexp.MustCompile(`^unused\d+$`)
	macRE        = regexp.MustCompile(`[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}`)
	smbiosRE     = regexp.MustCompile(`^(smbios1: )(.*)`)
	// keyLineRE is a config line parse_vm_config takes as a setting.
	keyLineRE = regexp.MustCompile(`^([a-z][a-z_\-]*\d*):\s*(.+?)\s*$`)
	sizeRE    = regexp.MustCompile(`^(\d+(?:\.\d+)?)([KMGT])?$`)
	// driveKeyRE are the keys is_valid_drivename accepts
	// (qemu-server src/PVE/QemuServer/Drive.pm: ide0-3, sata0-5, scsi0-30,
	// virtio0-15, efidisk0, tpmstate0).
	driveKeyRE = regexp.MustCompile(`^(ide[0-3]|sata[0-5]|scsi([0-9]|[12][0-9]|30)|virtio([0-9]|1[0-5])|efidisk0|tpmstate0)$`)
)

// macPrefix is datacenter.cfg's default mac_prefix, which
// PVE::Tools::random_ether_addr puts before random bytes.
const macPrefix = "BC:24:11"

// updateConfig is restore_update_config_line over the archive's config,
// then restore_merge_config and write_vm_config: the VM's new config
// before rescan. volids maps drive keys to the volumes allocated for them.
func updateConfig(conf []byte, volids map[string]string, unique bool) *vmConfig {
	var raw strings.Builder
	for _, line := range strings.SplitAfter(string(conf), "\n") {
		if line != "" {
			raw.WriteString(updateLine(line, volids, unique))
		}
	}
	return parseConfig(raw.String())
}

// updateLine is restore_update_config_line for one line, with its "\n".
func updateLine(line string, volids map[string]string, unique bool) string {
	for _, p := range []string{"#qmdump#", "#vzdump#", "lock:", "parent:"} {
		if strings.HasPrefix(line, p) {
			return ""
		}
	}
	if unusedLineRE.MatchString(line) {
		return ""
	}
	text := strings.TrimSuffix(line, "\n")
	if m := netLineRE.FindStringSubmatch(text); m != nil && unique {
		net := m[2]
		if loc := macRE.FindStringIndex(net); loc != nil {
			net = net[:loc[0]] + randomMAC() + net[loc[1]:]
		}
		return m[1] + ": " + net + "\n"
	}
	if m := driveLineRE.FindStringSubmatch(text); m != nil {
		d := parseDrive(m[3])
		switch {
		case d.opts["backup"] == "0" || d.opts["backup"] == "no" || d.opts["backup"] == "off":
			return "#" + line
		case volids[m[1]] != "":
			delete(d.opts, "format") // format can change on restore
			d.file = volids[m[1]]
			return m[1] + ": " + d.String() + "\n"
		}
		return line
	}
	if v, ok := strings.CutPrefix(text, "vmgenid: "); ok {
		if v != "0" {
			v = uuid.NewString() // a valid vmgenid is always made anew
		}
		return "vmgenid: " + v + "\n"
	}
	if m := smbiosRE.FindStringSubmatch(text); m != nil && unique {
		items := []string{"uuid=" + uuid.NewString()}
		for _, it := range strings.Split(m[2], ",") {
			if it != "" && !strings.HasPrefix(it, "uuid=") {
				items = append(items, it)
			}
		}
		sort.Strings(items) // print_smbios1 prints its keys sorted
		return m[1] + strings.Join(items, ",") + "\n"
	}
	return line
}

// randomMAC is random_ether_addr with the default prefix.
func randomMAC() string {
	b := make([]byte, 3)
	rand.Read(b)
	return fmt.Sprintf("%s:%02X:%02X:%02X", macPrefix, b[0], b[1], b[2])
}

// drive is a drive line's value as parse_drive splits it.
type drive struct {
	file string
	opts map[string]string
}

func parseDrive(v string) drive {
	d := drive{opts: map[string]string{}}
	for i, it := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(it, "=")
		switch {
		case i == 0 && !ok:
			d.file = it
		case k == "file" || k == "volume":
			d.file = val
		case ok:
			d.opts[k] = val
		}
	}
	return d
}

// String is print_drive: the volume first, then the options sorted by
// name, a size as format_size writes it
// (pve-common src/PVE/JSONSchema.pm print_property_string).
func (d drive) String() string {
	keys := make([]string, 0, len(d.opts))
	for k := range d.opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := []string{d.file}
	for _, k := range keys {
		v := d.opts[k]
		if k == "size" {
			if n, ok := parseSize(v); ok {
				v = FormatSize(n)
			}
		}
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

// DriveValue is the config value of a drive on volume volid with the
// options opts ("efitype=4m,pre-enrolled-keys=1") and size bytes, as
// create_disks writes it with print_drive.
func DriveValue(volid, opts string, size int64) string {
	d := parseDrive(volid + "," + opts)
	d.opts["size"] = FormatSize(size)
	return d.String()
}

// parseSize reads a disk-size option as pve-common's parse_size does.
func parseSize(s string) (int64, bool) {
	m := sizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, false
	}
	shift := map[string]uint{"": 0, "K": 10, "M": 20, "G": 30, "T": 40}[m[2]]
	return int64(f * float64(int64(1)<<shift)), true
}

// FormatSize is pve-common's format_size: a size in the largest unit
// that divides it, as drive lines carry it.
func FormatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"T", 40}, {"G", 30}, {"M", 20}, {"K", 10}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// vmConfig is a config as parse_vm_config reads it: the main section and
// any others ([PENDING], snapshots), each with its description.
type vmConfig struct {
	main     section
	sections map[string]*section
}

type section struct {
	descr    string
	hasDescr bool
	keys     map[string]string
}

// parseConfig is parse_vm_config (qemu-server src/PVE/QemuServer.pm):
// blank lines skipped, # lines and "description:" gathered into the
// description, other lines as keys.
func parseConfig(raw string) *vmConfig {
	c := &vmConfig{main: section{keys: map[string]string{}}, sections: map[string]*section{}}
	sec := &c.main
	for _, line := range strings.Split(raw, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(strings.TrimSpace(line), "]") {
			name := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(line), "["), "]")
			sec = &section{keys: map[string]string{}}
			c.sections[name] = sec
			continue
		}
		if d, ok := strings.CutPrefix(line, "#"); ok {
			sec.descr += decodeText(d) + "\n"
			sec.hasDescr = true
			continue
		}
		m := keyLineRE.FindStringSubmatch(line)
		if m == nil {
			continue // parse_vm_config warns and goes on
		}
		if m[1] == "description" {
			sec.descr += decodeText(m[2])
			sec.hasDescr = true
			continue
		}
		sec.keys[m[1]] = m[2]
	}
	for _, s := range append([]*section{&c.main}, mapValues(c.sections)...) {
		s.descr = strings.TrimRight(s.descr, " \t\n")
	}
	return c
}

func mapValues(m map[string]*section) []*section {
	out := make([]*section, 0, len(m))
	for _, s := range m {
		out = append(out, s)
	}
	return out
}

// bytes is write_vm_config: each section's description as # lines, then
// its keys sorted; [PENDING] after the main section, then the others by
// name.
func (c *vmConfig) bytes() []byte {
	var b strings.Builder
	c.main.write(&b)
	names := make([]string, 0, len(c.sections))
	for name := range c.sections {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		if (names[i] == "PENDING") != (names[j] == "PENDING") {
			return names[i] == "PENDING"
		}
		return names[i] < names[j]
	})
	for _, name := range names {
		b.WriteString("\n[" + name + "]\n")
		c.sections[name].write(&b)
	}
	return []byte(b.String())
}

func (s *section) write(b *strings.Builder) {
	if s.hasDescr && s.descr != "" {
		for _, line := range strings.Split(s.descr, "\n") {
			b.WriteString("#" + encodeText(line) + "\n")
		}
	}
	keys := make([]string, 0, len(s.keys))
	for k := range s.keys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.WriteString(k + ": " + s.keys[k] + "\n")
	}
}

// encodeText is pve-common's encode_text (src/PVE/ParseUtils.pm): control
// and high-bit characters, ':' and '%' as %XX.
func encodeText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == ':' || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// decodeText is decode_text: %XX sequences back to bytes.
func decodeText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Settings returns the main section of a config as the API's GET
// .../config gives it: each key, and the description under "description".
func Settings(conf []byte) map[string]string {
	c := parseConfig(string(conf))
	m := make(map[string]string, len(c.main.keys)+1)
	for k, v := range c.main.keys {
		m[k] = v
	}
	if c.main.hasDescr {
		m["description"] = c.main.descr
	}
	return m
}

// rescan is rescan's update_disk_config (qemu-server
// src/PVE/QemuServer.pm) over the volumes VM vmid owns on the node (vols,
// all of the node's with their sizes): each drive on one of them, not a
// CD-ROM, gets the volume's size; an unusedN entry whose volume a drive
// uses goes; a volume no drive names becomes unusedN. It prints what it
// changes, as rescan does.
func rescan(c *vmConfig, vmid int, vols map[string]int64, out func(string)) []byte {
	prefix := "VM " + strconv.Itoa(vmid)
	owned := map[string]int64{}
	for v, size := range vols {
		if owner, ok := Owner(v); ok && owner == vmid && size > 0 {
			owned[v] = size
		}
	}
	referenced := map[string]bool{}
	keys := make([]string, 0, len(c.main.keys))
	for k := range c.main.keys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !driveKeyRE.MatchString(k) {
			continue
		}
		d := parseDrive(c.main.keys[k])
		referenced[d.file] = true
		size, ok := owned[d.file]
		if !ok || d.opts["media"] == "cdrom" {
			continue
		}
		old, _ := parseSize(d.opts["size"])
		if old == size {
			continue
		}
		d.opts["size"] = FormatSize(size)
		c.main.keys[k] = d.String()
		out(fmt.Sprintf("%s (%s): size of disk '%s' updated from %s to %s", prefix, k, d.file, FormatSize(old), FormatSize(size)))
	}
	for _, k := range keys {
		if v, ok := c.main.keys[k]; ok && unusedKeyRE.MatchString(k) && referenced[parseDrive(v).file] {
			out(fmt.Sprintf("%s remove entry '%s', its volume '%s' is in use", prefix, k, parseDrive(v).file))
			delete(c.main.keys, k)
		} else if ok && unusedKeyRE.MatchString(k) {
			referenced[parseDrive(v).file] = true
		}
	}
	names := make([]string, 0, len(owned))
	for v := range owned {
		names = append(names, v)
	}
	sort.Strings(names)
	for _, v := range names {
		if referenced[v] || strings.Contains(v, "vm-"+strconv.Itoa(vmid)+"-state-") {
			continue
		}
		i := 0
		for c.main.keys["unused"+strconv.Itoa(i)] != "" {
			i++
		}
		key := "unused" + strconv.Itoa(i)
		c.main.keys[key] = v
		out(fmt.Sprintf("%s add unreferenced volume '%s' as '%s' to config", prefix, v, key))
	}
	return c.bytes()
}

// ownerRE is the owner part of the volume names the storage plugins parse
// (pve-storage src/PVE/Storage/Plugin.pm parse_name_dir and parse_volname):
// "vm-N-..." or "base-N-..." on block storages, "N/vm-N-..." in folders,
// and a linked clone's "B/base-B-disk-0/N/vm-N-...".
var ownerRE = regexp.MustCompile(`^(?:[^:]+:)(?:\d+/base-\d+-[^/]+/)?(?:\d+/)?(?:vm|base)-(\d+)-`)

// Owner is the VM ID a disk volume belongs to, from its name.
func Owner(volid string) (int, bool) {
	m := ownerRE.FindStringSubmatch(volid)
	if m == nil {
		return 0, false
	}
	id, err := strconv.Atoi(m[1])
	return id, err == nil
}

// FormatConfig is write_vm_config for the main section given as the API's
// GET .../config gives it (Settings): the description as # lines, then
// the keys sorted.
func FormatConfig(settings map[string]string) []byte {
	c := &vmConfig{main: section{keys: map[string]string{}}, sections: map[string]*section{}}
	for k, v := range settings {
		if k == "description" {
			c.main.descr, c.main.hasDescr = v, true
			continue
		}
		c.main.keys[k] = v
	}
	return c.bytes()
}
