package pveconf

import (
	"fmt"
	"regexp"
	"strings"
)

// VMOptions are the settings of a generated config. The zero value of each
// field means the default, which follows nixpkgs' proxmox.qemuConf.
type VMOptions struct {
	Name      string   // default vm<vmid>
	Memory    int      // MiB, default 1024
	Cores     int      // default 1
	Net       string   // net0, default "virtio,bridge=vmbr0" (Proxmox picks a MAC)
	BIOS      string   // "seabios" (default) or "ovmf"
	Serial    bool     // serial0: socket, for a console on the serial port
	Agent     bool     // agent: 1, the QEMU guest agent
	CloudInit bool     // ide2: <storage>:cloudinit
	Tags      []string // Proxmox VM tags
	OSType    string   // default l26
}

var (
	tagPattern  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9_+.-]*$`)
	namePattern = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$`)
)

// Validate rejects values Proxmox would refuse, or that would break the
// line-oriented config format.
func (o VMOptions) Validate() error {
	if o.Name != "" && !namePattern.MatchString(o.Name) {
		return fmt.Errorf("VM name %q: Proxmox wants a DNS name (letters, digits, '-' and '.')", o.Name)
	}
	if o.BIOS != "" && o.BIOS != "seabios" && o.BIOS != "ovmf" {
		return fmt.Errorf("bios %q: want seabios or ovmf", o.BIOS)
	}
	if o.Memory < 0 || o.Cores < 0 {
		return fmt.Errorf("memory and cores must be positive")
	}
	for _, v := range []string{o.Net, o.OSType} {
		if strings.ContainsAny(v, "\n\r") {
			return fmt.Errorf("config value %q contains a line break", v)
		}
	}
	for _, t := range o.Tags {
		if !tagPattern.MatchString(t) {
			return fmt.Errorf("tag %q: Proxmox tags are letters, digits and _ + . -", t)
		}
	}
	return nil
}

// Generate returns a config for the given drives: a drive line and a
// #qmdump#map line for each (qmrestore needs both to place and attach a
// disk), and the VM settings of o.
func Generate(vmid int, o VMOptions, drives []Drive) []byte {
	name := o.Name
	if name == "" {
		name = fmt.Sprintf("vm%d", vmid)
	}
	memory, cores := o.Memory, o.Cores
	if memory == 0 {
		memory = 1024
	}
	if cores == 0 {
		cores = 1
	}
	net := o.Net
	if net == "" {
		net = "virtio,bridge=vmbr0"
	}
	osType := o.OSType
	if osType == "" {
		osType = "l26"
	}
	var b strings.Builder
	if o.Agent {
		b.WriteString("agent: 1\n")
	}
	if o.BIOS != "" {
		fmt.Fprintf(&b, "bios: %s\n", o.BIOS)
	}
	if len(drives) > 0 {
		fmt.Fprintf(&b, "boot: order=%s\n", drives[0].Key)
	}
	fmt.Fprintf(&b, "cores: %d\nmemory: %d\nname: %s\nnet0: %s\nostype: %s\nscsihw: virtio-scsi-single\n", cores, memory, name, net, osType)
	if o.Serial {
		b.WriteString("serial0: socket\n")
	}
	if len(o.Tags) > 0 {
		fmt.Fprintf(&b, "tags: %s\n", strings.Join(o.Tags, ";"))
	}
	if o.CloudInit && len(drives) > 0 {
		fmt.Fprintf(&b, "ide2: %s:cloudinit,media=cdrom\n", drives[0].Storage)
	}
	for i, d := range drives {
		fmt.Fprintf(&b, "%s: %s:vm-%d-disk-%d,size=%s\n", d.Key, d.Storage, vmid, i, SizeString(d.Size))
	}
	for _, d := range drives {
		b.WriteString(MapLine(d) + "\n")
	}
	return []byte(b.String())
}
