package pveconf

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// MaxNets is the number of network devices a VM can have: net0 to net31
// (qemu-server src/PVE/QemuServer.pm $MAX_NETS).
const MaxNets = 32

// nicModels are the models qemu-server knows
// (src/PVE/QemuServer/Network.pm $nic_model_list).
var nicModels = []string{"e1000", "e1000-82540em", "e1000-82544gc", "e1000-82545em", "e1000e", "i82551",
	"i82557b", "i82559er", "ne2k_isa", "ne2k_pci", "pcnet", "rtl8139", "virtio", "vmxnet3"}

var (
	// macAddr is pve-common's mac-addr format: unicast only, since a
	// group address breaks networking.
	macAddr = regexp.MustCompile(`^(?i:[a-f0-9][02468ace](:[a-f0-9]{2}){5})$`)
	// bridgeID is pve-common's pve-bridge-id.
	bridgeID = regexp.MustCompile(`^[-_.a-zA-Z0-9]+$`)
	// trunksPattern and ratePattern are the net format's trunks pattern
	// and a plain non-negative number.
	trunksPattern = regexp.MustCompile(`^\d+(-\d+)?(;\d+(-\d+)?)*$`)
	ratePattern   = regexp.MustCompile(`^\d+(\.\d+)?$`)
	netKey        = regexp.MustCompile(`^net(0|[1-9][0-9]?)$`)
)

// validNetKey reports whether key is net0 to net31.
func validNetKey(key string) bool {
	m := netKey.FindStringSubmatch(key)
	if m == nil {
		return false
	}
	n, err := strconv.Atoi(m[1])
	return err == nil && n < MaxNets
}

// Net is one network device, a netN line of the config. The zero value is
// a virtio NIC without a bridge, which QEMU runs as user-mode (NAT)
// networking, as Proxmox does.
type Net struct {
	// Key is net0 to net31; "" takes the lowest one no other device uses.
	Key string
	// Model is a NIC model qemu-server knows; "" means virtio.
	Model string
	// MACAddr is a unicast MAC address; "" lets Proxmox pick one (see
	// Generated.PostRestore).
	MACAddr string
	// Bridge is the host bridge, e.g. vmbr0.
	Bridge string
	// Tag is the VLAN tag, 1 to 4094; 0 means untagged.
	Tag int
	// Trunks are the VLANs passed through: "vlanid[-vlanid][;...]".
	Trunks string
	// Firewall puts the device behind the Proxmox firewall.
	Firewall bool
	// LinkDown starts the device unplugged.
	LinkDown bool
	// MTU is 1 to 65520 (virtio only); 0 leaves it to the bridge.
	MTU int
	// Queues is the number of packet queues, up to 64; 0 leaves it unset.
	Queues int
	// Rate is a limit in MB/s, a decimal number; "" means none.
	Rate string
}

// ParseNet reads a device as "qm set --netN" takes it, optionally led by
// its key: "[netN=]MODEL[=MAC][,bridge=B][,tag=N][,firewall=1]...", or
// with model= and macaddr= spelled out. Keys and values follow
// qemu-server's net format; an unknown key, a key given twice or an
// invalid value is an *OptionError naming the device.
func ParseNet(s string) (Net, error) {
	var n Net
	option := "net"
	if k, rest, ok := strings.Cut(s, "="); ok && strings.HasPrefix(k, "net") && !slices.Contains(nicModels, k) {
		if !validNetKey(k) {
			return Net{}, optionErrorf("net", s, "network devices are net0 to net%d", MaxNets-1)
		}
		n.Key, option, s = k, k, rest
	}
	fail := func(format string, args ...any) (Net, error) {
		return Net{}, optionErrorf(option, s, format, args...)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fail("a device has no spaces or control characters")
	}
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		if part == "" {
			continue // Proxmox skips empty items too
		}
		k, v, hasValue := strings.Cut(part, "=")
		if !hasValue {
			k, v = "model", part
		} else if slices.Contains(nicModels, k) {
			// MODEL=MAC, the form Proxmox itself writes.
			if seen["macaddr"] {
				return fail("macaddr given twice")
			}
			seen["macaddr"] = true
			k, n.MACAddr, v = "model", v, k
		}
		if seen[k] {
			return fail("%s given twice", k)
		}
		seen[k] = true
		var err error
		switch k {
		case "model":
			n.Model = v
		case "macaddr":
			n.MACAddr = v
		case "bridge":
			n.Bridge = v
		case "trunks":
			n.Trunks = v
		case "rate":
			n.Rate = v
		case "tag":
			n.Tag, err = strconv.Atoi(v)
		case "mtu":
			n.MTU, err = strconv.Atoi(v)
		case "queues":
			n.Queues, err = strconv.Atoi(v)
		case "firewall":
			n.Firewall, err = parseBool(v)
		case "link_down":
			n.LinkDown, err = parseBool(v)
		default:
			return fail("unknown key %q (want model, macaddr, bridge, tag, trunks, firewall, link_down, mtu, queues or rate)", k)
		}
		if err != nil {
			return fail("%s %q is not a number (booleans are 1 or 0)", k, v)
		}
		if (k == "tag" && n.Tag == 0) || (k == "mtu" && n.MTU == 0) {
			// 0 means unset in Net, but Proxmox's minimum for both is 1.
			return fail("%s 0: the least is 1", k)
		}
	}
	if err := n.validate(option); err != nil {
		return Net{}, err
	}
	return n, nil
}

// parseBool reads a boolean as pve-common's parse_boolean does.
func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "1", "on", "yes", "true":
		return true, nil
	case "0", "off", "no", "false":
		return false, nil
	}
	return false, strconv.ErrSyntax
}

// Validate checks every field against qemu-server's net format.
func (n Net) Validate() error {
	option := n.Key
	if option == "" {
		option = "net"
	}
	return n.validate(option)
}

func (n Net) validate(option string) error {
	bad := func(format string, args ...any) error {
		return optionErrorf(option, n.String(), format, args...)
	}
	switch {
	case n.Key != "" && !validNetKey(n.Key):
		return optionErrorf("net", n.Key, "network devices are net0 to net%d", MaxNets-1)
	case n.Model != "" && !slices.Contains(nicModels, n.Model):
		return optionErrorf(option, n.Model, "unknown NIC model (want one of %s)", strings.Join(nicModels, ", "))
	case n.MACAddr != "" && !macAddr.MatchString(n.MACAddr):
		return optionErrorf(option, n.MACAddr, "want a unicast MAC address XX:XX:XX:XX:XX:XX (the second digit even)")
	case n.Bridge != "" && !bridgeID.MatchString(n.Bridge):
		return optionErrorf(option, n.Bridge, "a bridge name is letters, digits, '-', '_' and '.'")
	case n.Tag != 0 && (n.Tag < 1 || n.Tag > 4094):
		return bad("tag %d: VLAN tags run from 1 to 4094", n.Tag)
	case n.Trunks != "" && !trunksPattern.MatchString(n.Trunks):
		return optionErrorf(option, n.Trunks, "trunks are vlanid[-vlanid] separated by ';'")
	case n.MTU < 0 || n.MTU > 65520:
		return bad("mtu %d: want 1 to 65520", n.MTU)
	case n.Queues < 0 || n.Queues > 64:
		return bad("queues %d: want 0 to 64", n.Queues)
	case n.Rate != "" && !ratePattern.MatchString(n.Rate):
		return optionErrorf(option, n.Rate, "rate is a non-negative decimal number (MB/s)")
	}
	return nil
}

// String returns the device as Proxmox prints it (print_property_string):
// the model, with its MAC as MODEL=MAC, then the other keys sorted. The
// key is not part of it.
func (n Net) String() string {
	model := n.Model
	if model == "" {
		model = "virtio"
	}
	parts := []string{model}
	if n.MACAddr != "" {
		parts[0] += "=" + n.MACAddr
	}
	add := func(k, v string) { parts = append(parts, k+"="+v) }
	if n.Bridge != "" {
		add("bridge", n.Bridge)
	}
	if n.Firewall {
		add("firewall", "1")
	}
	if n.LinkDown {
		add("link_down", "1")
	}
	if n.MTU != 0 {
		add("mtu", strconv.Itoa(n.MTU))
	}
	if n.Queues != 0 {
		add("queues", strconv.Itoa(n.Queues))
	}
	if n.Rate != "" {
		add("rate", n.Rate)
	}
	if n.Tag != 0 {
		add("tag", strconv.Itoa(n.Tag))
	}
	if n.Trunks != "" {
		add("trunks", n.Trunks)
	}
	return strings.Join(parts, ",")
}
