package pveconf

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// VMOptions are the settings of a generated config. The zero value of each
// field means the default, which follows nixpkgs' proxmox.qemuConf.
type VMOptions struct {
	Name   string // default vm<vmid>
	Memory int    // MiB, at least 16; default 1024
	Cores  int    // default 1
	// Net is net0 as "qm set --net0" takes it (see ParseNet), default
	// "virtio,bridge=vmbr0". It is used only when Nets is empty.
	Net string
	// Nets are the network devices, net0 to net31; when given, they are
	// all of them and Net is not used.
	Nets   []Net
	BIOS   string   // "seabios" (default) or "ovmf"
	Serial bool     // serial0: socket, for a console on the serial port
	Agent  bool     // agent: 1, the QEMU guest agent
	Tags   []string // Proxmox VM tags
	OSType string   // default l26
	// CloudInit adds the cloud-init drive, ide2, which the restore
	// allocates on its target storage.
	CloudInit bool
	// EFIType is the OVMF vars layout, "4m" or "2m"; it needs BIOS ovmf.
	// Default: "4m" for a disk Proxmox creates, and for an efidisk0 the
	// archive holds, whatever its size fits (4m vars take 528K, 2m 128K),
	// since firmware code and vars must agree for the VM to boot.
	EFIType string
	// PreEnrolledKeys enrolls Microsoft's and the distributions' Secure
	// Boot keys in a created EFI vars disk (pre-enrolled-keys=1), which
	// turns Secure Boot on; it needs BIOS ovmf and EFIType 4m. Images not
	// signed for Secure Boot (NixOS by default) want it off.
	PreEnrolledKeys bool
	// TPM adds a TPM v2.0 state disk, tpmstate0.
	TPM bool
	// Storage is where the disks the config asks Proxmox to create go
	// (EFI vars, TPM state, the cloud-init drive); "" means the first
	// drive's storage, or local-lvm without drives.
	Storage string
}

// Generated is a config made for disk images, and what completes the VM
// once it is restored.
type Generated struct {
	// Config is the qemu-server.conf to store in the archive: the VM's
	// settings, a drive line for every disk and, after them, a
	// #qmdump#map line for each (qmrestore needs both to place and attach
	// a disk).
	Config []byte
	// PostRestore are the settings a deploy applies after the restore,
	// sorted by key, before the VM first starts: disks the archive does
	// not hold, which qmrestore cannot create (an EFI vars disk or a TPM
	// state disk as STORAGE:1,...), and each network device without a MAC
	// address, set again so that Proxmox picks one and writes it down
	// (without one, every start makes up another, and cloud-init's network
	// config matches none). They are parameters of PUT or POST
	// /nodes/{node}/qemu/{vmid}/config, or "qm set" options, all in one
	// call. Values hold no whitespace or quotes, but may hold ';'.
	PostRestore []Setting
}

// Setting is one config key and its value.
type Setting struct {
	Key   string // e.g. "efidisk0"
	Value string // e.g. "local-lvm:1,efitype=4m,pre-enrolled-keys=0"
}

// QMSetArgs returns the "qm set" command that applies g.PostRestore to VM
// vmid, or nil if there is nothing to apply. A shell must see each value
// quoted.
func (g *Generated) QMSetArgs(vmid int) []string {
	if len(g.PostRestore) == 0 {
		return nil
	}
	args := []string{"qm", "set", strconv.Itoa(vmid)}
	for _, s := range g.PostRestore {
		args = append(args, "--"+s.Key, s.Value)
	}
	return args
}

// Sizes of the OVMF vars templates (pve-edk2-firmware's OVMF_VARS.fd and
// OVMF_VARS_4M.fd): QEMU maps that many bytes of the EFI disk.
const (
	efiVars2M = 128 << 10
	efiVars4M = 540672
)

// defaultStorage is where a generated config puts volumes when nothing
// names a storage: the thin pool of a default Proxmox install.
const defaultStorage = "local-lvm"

var (
	// dnsName is pve-common's dns-name format, which a VM name must be.
	dnsName = regexp.MustCompile(`^([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$`)
	// tagPattern is pve-common's pve-tag.
	tagPattern = regexp.MustCompile(`^(?i:[a-z0-9_][a-z0-9_+.-]*)$`)
	// devName is what a #qmdump#map line can carry as a device name:
	// printable, no space, no ':'.
	devName = regexp.MustCompile(`^[!-9;-~]+$`)
	// osTypes are qemu-server's ostype values.
	osTypes = []string{"other", "wxp", "w2k", "w2k3", "w2k8", "wvista", "win7", "win8", "win10", "win11", "l24", "l26", "solaris"}
	// imageFormats are qemu-server's pve-qm-image-format values.
	imageFormats = []string{"raw", "cow", "qcow", "qed", "qcow2", "vmdk", "cloop"}
)

// Validate rejects values Proxmox would refuse, or that would break the
// line-oriented config format. Each error is an *OptionError naming the
// setting (errors.Is(err, ErrInvalid)).
func (o VMOptions) Validate() error {
	_, err := o.check()
	return err
}

// check validates o and returns its network devices, each with its key.
func (o VMOptions) check() ([]Net, error) {
	switch {
	case o.Name != "" && !dnsName.MatchString(o.Name):
		return nil, optionErrorf("name", o.Name, "Proxmox wants a DNS name (letters, digits and '-', in labels separated by '.')")
	case o.Memory != 0 && o.Memory < 16:
		return nil, optionErrorf("memory", strconv.Itoa(o.Memory), "want at least 16 (MiB)")
	case o.Cores < 0:
		return nil, optionErrorf("cores", strconv.Itoa(o.Cores), "want at least 1")
	case o.BIOS != "" && o.BIOS != "seabios" && o.BIOS != "ovmf":
		return nil, optionErrorf("bios", o.BIOS, "want seabios or ovmf")
	case o.OSType != "" && !slices.Contains(osTypes, o.OSType):
		return nil, optionErrorf("ostype", o.OSType, "want one of %s", strings.Join(osTypes, ", "))
	case o.EFIType != "" && o.EFIType != "2m" && o.EFIType != "4m":
		return nil, optionErrorf("efidisk0", o.EFIType, "efitype is 4m or 2m")
	case o.EFIType != "" && o.BIOS != "ovmf":
		return nil, optionErrorf("efidisk0", o.EFIType, "an efitype needs bios ovmf")
	case o.PreEnrolledKeys && (o.BIOS != "ovmf" || o.EFIType == "2m"):
		return nil, optionErrorf("efidisk0", "pre-enrolled-keys=1", "pre-enrolled keys need bios ovmf and efitype 4m")
	}
	for _, t := range o.Tags {
		if !tagPattern.MatchString(t) {
			return nil, optionErrorf("tags", t, "a tag is letters, digits and _ + . -, not starting with + . or -")
		}
	}
	if o.Storage != "" {
		if err := ValidateStorage(o.Storage); err != nil {
			return nil, err
		}
	}
	return o.nets()
}

// nets returns the network devices: Nets with every key assigned, or net0
// from Net.
func (o VMOptions) nets() ([]Net, error) {
	if len(o.Nets) == 0 {
		s := o.Net
		if s == "" {
			s = "virtio,bridge=vmbr0"
		}
		n, err := ParseNet(s)
		if err != nil {
			return nil, err
		}
		if n.Key == "" {
			n.Key = "net0"
		}
		return []Net{n}, nil
	}
	if len(o.Nets) > MaxNets {
		return nil, optionErrorf("net", strconv.Itoa(len(o.Nets)), "a VM has at most %d network devices", MaxNets)
	}
	nets := slices.Clone(o.Nets)
	used := map[string]bool{}
	for _, n := range nets {
		if n.Key == "" {
			continue
		}
		if err := n.Validate(); err != nil {
			return nil, err
		}
		if used[n.Key] {
			return nil, optionErrorf(n.Key, n.String(), "%s given twice", n.Key)
		}
		used[n.Key] = true
	}
	next := 0
	for i := range nets {
		if nets[i].Key != "" {
			continue
		}
		for used["net"+strconv.Itoa(next)] {
			next++
		}
		nets[i].Key = "net" + strconv.Itoa(next)
		used[nets[i].Key] = true
		if err := nets[i].Validate(); err != nil {
			return nil, err
		}
	}
	return nets, nil
}

// checkDrives validates the drives as the config will name them, and
// fills in defaults (device name, format).
func checkDrives(drives []Drive) ([]Drive, error) {
	out := slices.Clone(drives)
	seen := map[string]bool{}
	for i := range out {
		d := &out[i]
		if !validDriveKey(d.Key) {
			return nil, optionErrorf("disk", d.Key, "not a drive key (scsi0-30, virtio0-15, sata0-5, ide0-3, efidisk0 or tpmstate0)")
		}
		if seen[d.Key] {
			return nil, optionErrorf(d.Key, d.DevName, "drive %s given twice", d.Key)
		}
		seen[d.Key] = true
		if d.DevName == "" {
			d.DevName = DevName(d.Key)
		}
		if !devName.MatchString(d.DevName) {
			return nil, optionErrorf(d.Key, d.DevName, "a device name is printable, without spaces or ':'")
		}
		if err := ValidateStorage(d.Storage); err != nil {
			return nil, err
		}
		if d.Format == "" {
			d.Format = "raw"
		}
		if !slices.Contains(imageFormats, d.Format) {
			return nil, optionErrorf(d.Key, d.Format, "want an image format Proxmox knows (%s)", strings.Join(imageFormats, ", "))
		}
		if d.Size < 0 {
			return nil, optionErrorf(d.Key, strconv.FormatInt(d.Size, 10), "a size is not negative")
		}
	}
	return out, nil
}

// Generate returns a config for VM vmid with the settings of o and a drive
// line and #qmdump#map line for each of drives, plus the settings to apply
// once it is restored (see Generated). Everything is validated first: an
// error is an *OptionError naming the setting or drive.
//
// What goes where follows what qmrestore does (qemu-server
// src/PVE/QemuServer.pm restore_vma_archive): it allocates a volume for
// every #qmdump#map line, whose device the archive must hold, and for a
// cloud-init drive line (parse_backup_hints); every other drive line it
// keeps as it is (restore_update_config_line), so "STORAGE:1" there would
// name a volume that does not exist. Hence an EFI vars disk or TPM state
// the drives do not include is created afterwards, by PostRestore, while
// the cloud-init drive is a config line.
func Generate(vmid int, o VMOptions, drives []Drive) (*Generated, error) {
	nets, err := o.check()
	if err != nil {
		return nil, err
	}
	if vmid < 1 {
		return nil, optionErrorf("vmid", strconv.Itoa(vmid), "a VM id is positive")
	}
	if drives, err = checkDrives(drives); err != nil {
		return nil, err
	}
	byKey := map[string]Drive{}
	for _, d := range drives {
		byKey[d.Key] = d
	}
	storage := o.Storage
	if storage == "" {
		storage = defaultStorage
		if len(drives) > 0 {
			storage = drives[0].Storage
		}
	}
	efiType := o.EFIType
	if d, ok := byKey["efidisk0"]; ok {
		if efiType == "" {
			efiType = "4m"
			if d.Size < efiVars4M {
				efiType = "2m"
			}
		}
		// Only OVMF reads the disk; under SeaBIOS it is just attached.
		if need := map[string]int64{"2m": efiVars2M, "4m": efiVars4M}[efiType]; d.Size < need && o.BIOS == "ovmf" {
			return nil, optionErrorf("efidisk0", SizeString(d.Size), "EFI vars of efitype %s take %s", efiType, SizeString(need))
		}
	} else if efiType == "" {
		efiType = "4m"
	}
	efiOpts := fmt.Sprintf("efitype=%s,pre-enrolled-keys=%d", efiType, b2i(o.PreEnrolledKeys))

	conf := map[string]string{
		"cores":  strconv.Itoa(orDefault(o.Cores, 1)),
		"memory": strconv.Itoa(orDefault(o.Memory, 1024)),
		"name":   o.Name,
		"ostype": o.OSType,
		"scsihw": "virtio-scsi-single",
	}
	if conf["name"] == "" {
		conf["name"] = fmt.Sprintf("vm%d", vmid)
	}
	if conf["ostype"] == "" {
		conf["ostype"] = "l26"
	}
	if o.Agent {
		conf["agent"] = "1"
	}
	if o.BIOS != "" {
		conf["bios"] = o.BIOS
	}
	if o.Serial {
		conf["serial0"] = "socket"
	}
	if len(o.Tags) > 0 {
		conf["tags"] = strings.Join(o.Tags, ";")
	}
	var post []Setting
	for _, n := range nets {
		conf[n.Key] = n.String()
		if n.MACAddr == "" {
			post = append(post, Setting{n.Key, n.String()})
		}
	}
	for i, d := range drives {
		vol := fmt.Sprintf("%s:vm-%d-disk-%d", d.Storage, vmid, i)
		size := "size=" + SizeString(d.Size)
		switch d.Key {
		case "efidisk0":
			conf[d.Key] = vol + "," + efiOpts + "," + size
		case "tpmstate0":
			conf[d.Key] = vol + "," + size + ",version=v2.0"
		default:
			conf[d.Key] = vol + "," + size
			if _, ok := conf["boot"]; !ok {
				conf["boot"] = "order=" + d.Key // the first disk; EFI vars and TPM state do not boot
			}
		}
	}
	if o.CloudInit {
		if _, ok := byKey["ide2"]; ok {
			return nil, optionErrorf("ide2", byKey["ide2"].DevName, "the cloud-init drive is ide2, which a disk already takes")
		}
		conf["ide2"] = storage + ":cloudinit,media=cdrom"
	}
	if _, ok := byKey["efidisk0"]; !ok && o.BIOS == "ovmf" {
		post = append(post, Setting{"efidisk0", storage + ":1," + efiOpts})
	}
	if _, ok := byKey["tpmstate0"]; !ok && o.TPM {
		post = append(post, Setting{"tpmstate0", storage + ":1,version=v2.0"})
	}
	sort.Slice(post, func(i, j int) bool { return post[i].Key < post[j].Key })

	keys := make([]string, 0, len(conf))
	for k := range conf {
		keys = append(keys, k)
	}
	sort.Strings(keys) // as qemu-server's write_vm_config orders them
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %s\n", k, conf[k])
	}
	for _, d := range drives {
		b.WriteString(MapLine(d) + "\n")
	}
	return &Generated{Config: []byte(b.String()), PostRestore: post}, nil
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
