package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vmatool/vmatool/internal/pve"
	"github.com/vmatool/vmatool/internal/pveconf"
	"github.com/vmatool/vmatool/internal/recipe"
)

// Via names a restore path.
type Via string

// ViaAuto picks a path when the run starts: ViaSSH when a host is given
// and SSH to it connects, ViaImport when only the API can be reached (no
// host, or SSH fails for a reason other than a bad host key, and a token
// is at hand). The other Via values are declared beside their paths.
const ViaAuto Via = "auto"

// Target is one VM to deploy on one node. It is also the schema of a
// targets file: a JSON list of these objects (see the json tags), which is
// why VM settings sit beside node settings. DefaultTarget holds the
// defaults a file entry starts from.
type Target struct {
	// Name identifies the target in results and events, and for --target.
	Name string `json:"name,omitempty"`
	// Tags select targets (--tag); they are not the VM's tags (VMTags).
	Tags Strings `json:"tags,omitempty"`

	// Host is the node, [user@]host[:port]: SSH goes there (user root
	// by default), and the API too unless APIURL says otherwise.
	Host string `json:"host,omitempty"`
	// Node is the node's name in the cluster; by default the host's
	// short name (uname -n up to the first dot), or the API's only node.
	// NodeAuto lets Plan.Place choose one.
	Node string `json:"node,omitempty"`
	VMID int    `json:"vmid"`
	// Storage is where the VM's disks go.
	Storage string `json:"storage,omitempty"`
	// Via is the restore path; "" means ViaAuto.
	Via Via `json:"via,omitempty"`
	// Restore ("ssh" or "api") and Stream are the older spellings of
	// Via, kept for existing targets files: Stream is ViaSSHStream,
	// Restore "api" is ViaAPI.
	Restore string `json:"restore,omitempty"`
	Stream  bool   `json:"stream,omitempty"`

	// SSH.
	Identity              Strings `json:"identity,omitempty"`
	KnownHosts            string  `json:"known-hosts,omitempty"`
	InsecureIgnoreHostKey bool    `json:"insecure-ignore-host-key,omitempty"`
	// DumpDir is the node's folder the archive is uploaded to (ssh, api);
	// DumpStorage is the storage whose backup folder it is (api).
	DumpDir     string `json:"dump-dir,omitempty"`
	DumpStorage string `json:"dump-storage,omitempty"`

	// API.
	APIURL         string `json:"api-url,omitempty"`
	TokenFile      string `json:"token-file,omitempty"`
	TLSFingerprint string `json:"tls-fingerprint,omitempty"`
	// ImportStorage takes the uploaded disk images of ViaImport; it must
	// list "import" among its content types.
	ImportStorage string `json:"import-storage,omitempty"`

	// What to make of the VM.
	Start       bool `json:"start,omitempty"`
	Template    bool `json:"template,omitempty"`
	Force       bool `json:"force,omitempty"`
	Unique      bool `json:"unique,omitempty"`
	KeepArchive bool `json:"keep-archive,omitempty"`
	// Level is the zstd level of what is sent (0: the fastest).
	Level int `json:"level,omitempty"`

	// Once the VM is made. Wait "agent" starts the VM (as Start does) and
	// waits up to WaitTimeout for its QEMU guest agent to answer, then
	// reads its addresses. HA puts the VM under the HA manager, in
	// HAGroup if given (Proxmox VE 8 and older). DestroyOnFailure
	// removes the VM this run created when waiting or HA fails, as a
	// failed restore, template or start always does.
	Wait             string   `json:"wait,omitempty"`
	WaitTimeout      Duration `json:"wait-timeout,omitempty"`
	HA               bool     `json:"ha,omitempty"`
	HAGroup          string   `json:"ha-group,omitempty"`
	DestroyOnFailure bool     `json:"destroy-on-failure,omitempty"`

	// The image and its config. Config is a qemu-server.conf file to use
	// instead of one generated from the VM settings below.
	Config    string `json:"config,omitempty"`
	DataFile  string `json:"data-file,omitempty"`
	NoBacking bool   `json:"no-backing,omitempty"`

	// VM settings of a generated config (see pveconf.VMOptions).
	VMName string `json:"vm-name,omitempty"`
	Memory int    `json:"memory,omitempty"`
	Cores  int    `json:"cores,omitempty"`
	// Net are the VM's network devices, each as "qm set --netN" takes
	// it, optionally led by its key (pveconf.ParseNet): "net1=virtio,
	// bridge=vmbr1,tag=20". One string is taken as a list of one, as
	// older targets files give it.
	Net  Strings `json:"net,omitempty"`
	BIOS string  `json:"bios,omitempty"`
	// EFIType, PreEnrolledKeys and TPM shape the EFI vars disk (BIOS
	// ovmf) and the TPM state disk Proxmox creates once the VM is
	// restored, on Storage (pveconf.VMOptions).
	EFIType         string `json:"efitype,omitempty"`
	PreEnrolledKeys bool   `json:"pre-enrolled-keys,omitempty"`
	TPM             bool   `json:"tpm,omitempty"`
	Serial          bool   `json:"serial"`
	Agent           bool   `json:"agent"`
	// CloudInit adds the cloud-init drive, which the restore allocates on
	// Storage.
	CloudInit bool    `json:"cloud-init,omitempty"`
	VMTags    Strings `json:"vm-tags,omitempty"`
	// Disks are extra disk images, "KEY=PATH" (scsi1=data.qcow2), packed
	// into the same archive beside the source, which is scsi0.
	Disks Strings `json:"disks,omitempty"`
}

// Strings is a list of strings that a targets file may also give as one
// string, as older targets files, read through command-line flags, could.
type Strings []string

// UnmarshalJSON takes a list of strings or one string.
func (s *Strings) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = Strings{one}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("want a string or a list of strings")
	}
	*s = list
	return nil
}

// Duration is a time.Duration that a targets file gives as a string
// ("5m", "90s") or a number of seconds, and that JSON shows as a string.
type Duration time.Duration

// UnmarshalJSON takes "5m" or 300.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("want a duration such as \"5m\" or \"90s\", not %q", s)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return errors.New("want a duration such as \"5m\", or a number of seconds")
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// MarshalJSON writes the duration as time.Duration's String does.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d Duration) String() string { return time.Duration(d).String() }

// Defaults of DefaultTarget.
const (
	DefaultStorage       = "local-lvm"
	DefaultDumpDir       = "/var/lib/vz/dump"
	DefaultDumpStorage   = "local"
	DefaultImportStorage = "local"
	// DefaultWaitTimeout bounds the wait for the guest agent: a NixOS
	// VM boots well within it.
	DefaultWaitTimeout = 5 * time.Minute
)

// NodeAuto as a target's Node asks Plan.Place to choose the node.
const NodeAuto = "auto"

// WaitAgent as a target's Wait waits for the QEMU guest agent.
const WaitAgent = "agent"

// DefaultTarget is the target a targets file entry or the command line
// starts from.
func DefaultTarget() Target {
	return Target{
		Storage: DefaultStorage, DumpDir: DefaultDumpDir, DumpStorage: DefaultDumpStorage,
		ImportStorage: DefaultImportStorage, Via: ViaAuto, WaitTimeout: Duration(DefaultWaitTimeout),
		Memory: 1024, Cores: 1, Net: Strings{"virtio,bridge=vmbr0"}, BIOS: "seabios", Serial: true, Agent: true,
	}
}

// VMOptions are the settings of the config generated for an image. A
// network device ParseNet refuses is left out: Validate reports it.
func (t *Target) VMOptions() pveconf.VMOptions {
	o := pveconf.VMOptions{Name: t.VMName, Memory: t.Memory, Cores: t.Cores, BIOS: t.BIOS,
		EFIType: t.EFIType, PreEnrolledKeys: t.PreEnrolledKeys, TPM: t.TPM, Storage: t.Storage,
		Serial: t.Serial, Agent: t.Agent, CloudInit: t.CloudInit, Tags: t.VMTags}
	for _, s := range t.Net {
		if n, err := pveconf.ParseNet(s); err == nil {
			o.Nets = append(o.Nets, n)
		}
	}
	return o
}

// extraDisks reads Disks: each "KEY=PATH" with a drive key, never
// scsi0 (the source), no key twice. It reads no files.
func (t *Target) extraDisks() ([]recipe.Disk, error) {
	seen := map[string]bool{"scsi0": true}
	var out []recipe.Disk
	for _, d := range t.Disks {
		name, path, ok := strings.Cut(d, "=")
		if !ok || path == "" {
			return nil, fmt.Errorf("disk %q: want KEY=PATH, e.g. scsi1=data.qcow2", d)
		}
		key, _, err := pveconf.ParseDriveName(name)
		if err != nil {
			return nil, fmt.Errorf("disk %q: %v", d, err)
		}
		if seen[key] {
			return nil, fmt.Errorf("disk %q: %s is taken (scsi0 is the source image)", d, key)
		}
		seen[key] = true
		out = append(out, recipe.Disk{Name: key, Path: path})
	}
	return out, nil
}

var (
	// storageIDRE is pve-common src/PVE/JSONSchema.pm parse_id, which
	// the pve-storage-id format uses: case-insensitive, at least two
	// characters.
	storageIDRE = regexp.MustCompile(`(?i)^[a-z][a-z0-9\-_.]*[a-z0-9]$`)
	// nodeNameRE is pve-common src/PVE/JSONSchema.pm
	// pve_verify_node_name: no dots.
	nodeNameRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$`)
	// targetNameRE keeps names printable on one line of the results.
	targetNameRE = regexp.MustCompile(`^[^\s\x00-\x1f]+$`)
	// haGroupRE is pve-common src/PVE/JSONSchema.pm pve-configid, the
	// format of an HA group's name (pve-ha-manager src/PVE/HA/Groups.pm).
	haGroupRE = regexp.MustCompile(`(?i)^[a-z][a-z0-9_\-]+$`)
)

// ErrInvalidTarget marks a target that Validate refused.
var ErrInvalidTarget = errors.New("invalid target")

// TargetError is a target Validate refused: which one and why.
type TargetError struct {
	Target string
	Msg    string
}

func (e *TargetError) Error() string {
	if e.Target == "" {
		return e.Msg
	}
	return e.Target + ": " + e.Msg
}

// Unwrap returns ErrInvalidTarget, for errors.Is.
func (e *TargetError) Unwrap() error { return ErrInvalidTarget }

// Validate checks everything about t that can be checked without a
// network: values Proxmox would refuse (VM ID, storage IDs, node name, VM
// settings), how they combine, and the restore path's needs. It does not
// read files; NewPlan reads the token file.
func (t *Target) Validate() error {
	bad := func(format string, args ...any) error {
		return &TargetError{Target: t.Name, Msg: fmt.Sprintf(format, args...)}
	}
	if t.Name != "" && !targetNameRE.MatchString(t.Name) {
		return bad("target name %q: no spaces or control characters", t.Name)
	}
	via, err := t.via()
	if err != nil {
		return bad("%v", err)
	}
	// pve-common src/PVE/JSONSchema.pm pve_verify_vmid: ^[1-9][0-9]{2,8}$.
	if t.VMID < pve.MinVMID || t.VMID > pve.MaxVMID {
		return bad("VM ID %d: Proxmox takes IDs from %d to %d", t.VMID, pve.MinVMID, pve.MaxVMID)
	}
	for _, s := range []struct{ what, v string }{{"storage", t.Storage}, {"dump-storage", t.DumpStorage}, {"import-storage", t.ImportStorage}} {
		if !storageIDRE.MatchString(s.v) {
			return bad("%s %q is not a Proxmox storage ID (a letter, then letters, digits, '-', '_' or '.', ending in a letter or digit)", s.what, s.v)
		}
	}
	if t.Node != "" && !nodeNameRE.MatchString(t.Node) {
		return bad("node %q is not a Proxmox node name (letters, digits and '-', no dots)", t.Node)
	}
	if t.Host != "" {
		if _, err := parseHost(t.Host); err != nil {
			return bad("%v", err)
		}
	}
	if t.APIURL != "" && strings.ContainsAny(t.APIURL, " \t\r\n") {
		return bad("api-url %q contains spaces", t.APIURL)
	}
	if !strings.HasPrefix(t.DumpDir, "/") || strings.ContainsAny(t.DumpDir, "\r\n\x00") {
		return bad("dump-dir %q must be an absolute path", t.DumpDir)
	}
	// Under auto, the path a host makes likely: ssh (import is only the
	// fallback).
	p := paths[via]
	if via == ViaAuto {
		p = paths[ViaSSH]
		if t.Host == "" {
			p = paths[ViaImport]
		}
	}
	switch {
	case p.needs.ssh && t.Host == "":
		return bad("--via %s needs a host to reach over SSH", via)
	case via == ViaAuto && t.Host == "" && t.APIURL == "":
		return bad("give a host (SSH, and the API at https://HOST:8006) or an api-url")
	case p.needs.api && t.Host == "" && t.APIURL == "":
		return bad("--via %s needs the API: a host or an api-url", via)
	case t.Start && t.Template:
		return bad("start and template exclude each other: a template cannot run")
	case t.KeepArchive && !p.keepsArchive:
		return bad("keep-archive: --via %s leaves no archive on the node to keep", via)
	case t.Level < 0 || t.Level > 22:
		return bad("level %d: zstd levels run from 1 to 22 (0: the fastest)", t.Level)
	case t.Config != "" && strings.ContainsAny(t.Config, "\x00"):
		return bad("config %q is not a file name", t.Config)
	case t.Wait != "" && t.Wait != WaitAgent:
		return bad("wait %q: want %s (the QEMU guest agent answers)", t.Wait, WaitAgent)
	case t.Wait != "" && t.Template:
		return bad("wait and template exclude each other: a template cannot run")
	case t.Wait != "" && t.WaitTimeout <= 0:
		return bad("wait-timeout %s: want a positive duration", t.WaitTimeout)
	case t.HA && t.Template:
		return bad("ha and template exclude each other: the HA manager keeps VMs running, and a template cannot run")
	case t.HAGroup != "" && !t.HA:
		return bad("ha-group %s: the group is for ha, which is not set", t.HAGroup)
	case t.HAGroup != "" && !haGroupRE.MatchString(t.HAGroup):
		return bad("ha-group %q is not an HA group name (a letter, then letters, digits, '-' or '_')", t.HAGroup)
	}
	for _, n := range t.Net {
		if _, err := pveconf.ParseNet(n); err != nil {
			return bad("net %q: %v", n, err)
		}
	}
	if _, err := t.extraDisks(); err != nil {
		return bad("%v", err)
	}
	if err := t.VMOptions().Validate(); err != nil {
		return bad("%v", err)
	}
	return nil
}

// starts says the VM is started once made: Start, or Wait, which needs
// it running.
func (t *Target) starts() bool { return t.Start || t.Wait != "" }

// via resolves the older Restore and Stream spellings into Via.
func (t *Target) via() (Via, error) {
	via := t.Via
	if via == "" {
		via = ViaAuto
	}
	if _, ok := paths[via]; !ok && via != ViaAuto {
		return "", fmt.Errorf("via %q: want %s", via, strings.Join(viaNames(), ", "))
	}
	old := Via("")
	switch t.Restore {
	case "":
	case "ssh":
		old = ViaSSH
	case "api":
		old = ViaAPI
	default:
		return "", fmt.Errorf("restore %q: want ssh or api (or use via)", t.Restore)
	}
	if t.Stream {
		if old == ViaAPI {
			return "", errors.New("stream pipes the archive into qmrestore over SSH; it does not go with restore api")
		}
		old = ViaSSHStream
	}
	switch {
	case old == "":
		return via, nil
	case via == ViaAuto || via == old:
		return old, nil
	}
	return "", fmt.Errorf("via %s contradicts the older restore/stream setting (%s)", via, old)
}

// sshHost is a parsed Target.Host.
type sshHost struct {
	user, host string
	port       int
	// userGiven and portGiven say the host string named them: only those
	// win over an OpenSSH client config.
	userGiven, portGiven bool
}

func (h sshHost) String() string { return net.JoinHostPort(h.host, strconv.Itoa(h.port)) }

// parseHost reads [user@]host[:port], with an IPv6 literal in brackets.
func parseHost(s string) (sshHost, error) {
	h := sshHost{user: "root", port: 22}
	orig := s
	if u, rest, ok := strings.Cut(s, "@"); ok {
		h.user, s, h.userGiven = u, rest, true
	}
	if host, port, err := net.SplitHostPort(s); err == nil {
		p, perr := strconv.Atoi(port)
		if perr != nil || p < 1 || p > 65535 {
			return h, fmt.Errorf("host %q: bad port", orig)
		}
		h.host, h.port, h.portGiven = host, p, true
	} else {
		h.host = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	}
	if h.host == "" || h.user == "" || strings.ContainsAny(h.host+h.user, " \t\r\n/@\x00") {
		return h, fmt.Errorf("host %q: want [user@]host[:port]", orig)
	}
	return h, nil
}

// apiURL is where the target's API is: APIURL, else the host on port
// 8006.
func (t *Target) apiURL() string {
	if t.APIURL != "" {
		return t.APIURL
	}
	h, _ := parseHost(t.Host)
	return "https://" + net.JoinHostPort(h.host, strconv.Itoa(pve.DefaultPort))
}
