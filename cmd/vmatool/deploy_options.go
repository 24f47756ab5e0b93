package main

import (
	"fmt"
	"net"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"github.com/vmatool/vmatool/internal/pveconf"
	"github.com/vmatool/vmatool/internal/remote"
)

// deployOptions are the settings of one deployment target.
type deployOptions struct {
	host        string
	vmid        int
	storage     string
	dumpDir     string
	dumpStorage string
	node        string

	identity   []string
	knownHosts string
	insecure   bool
	sshConfig  string

	restore        string // "ssh" or "api"
	apiURL         string
	tokenFile      string
	tlsFingerprint string

	stream      bool
	start       bool
	template    bool
	force       bool
	unique      bool
	keepArchive bool
	level       int

	config    string
	dataFile  string
	noBacking bool
	vm        pveconf.VMOptions
}

// bindDeployFlags declares the per-target flags. The targets file accepts
// the same names as keys.
func bindDeployFlags(fs *pflag.FlagSet, o *deployOptions) {
	fs.StringVar(&o.host, "host", "", "Proxmox node to deploy to, [user@]host[:port] (SSH; user defaults to root)")
	fs.IntVar(&o.vmid, "vmid", 0, "VM id to create")
	fs.StringVar(&o.storage, "storage", "local-lvm", "storage for the VM's disks")
	fs.StringVar(&o.dumpDir, "dump-dir", "/var/lib/vz/dump", "directory on the node the archive is uploaded to")
	fs.StringVar(&o.dumpStorage, "dump-storage", "local", "storage whose backup directory is --dump-dir (for --restore api)")
	fs.StringVar(&o.node, "node", "", "Proxmox node name for the API (default: the host's short name)")
	fs.StringArrayVarP(&o.identity, "identity", "i", nil, "SSH private key file (repeatable; default: ssh-agent, then ~/.ssh/id_*)")
	fs.StringVar(&o.knownHosts, "known-hosts", "", "known_hosts file to check the host key against (default ~/.ssh/known_hosts)")
	fs.BoolVar(&o.insecure, "insecure-ignore-host-key", false, "do not check the node's SSH host key (says so on stderr)")
	fs.StringVar(&o.sshConfig, "ssh-config", "", "OpenSSH client config to read instead of ~/.ssh/config and /etc/ssh/ssh_config (Host aliases, ProxyJump, ...)")
	fs.StringVar(&o.restore, "restore", "ssh", "how to restore: ssh (qmrestore on the node) or api (Proxmox VE API)")
	fs.StringVar(&o.apiURL, "api-url", "", "Proxmox API URL for --restore api (default https://<host>:8006)")
	fs.StringVar(&o.tokenFile, "token-file", "", "file holding the API token USER@REALM!ID=SECRET (default: $PVE_TOKEN)")
	fs.StringVar(&o.tlsFingerprint, "tls-fingerprint", "", "SHA-256 fingerprint of the API's certificate, to pin a self-signed one")
	fs.BoolVar(&o.stream, "stream", false, "pipe the archive into qmrestore over SSH: no file on the node")
	fs.BoolVar(&o.start, "start", false, "start the VM after the restore")
	fs.BoolVar(&o.template, "template", false, "convert the VM to a template after the restore")
	fs.BoolVar(&o.force, "force", false, "replace an existing VM with the same id")
	fs.BoolVar(&o.unique, "unique", false, "give the restored VM new MAC addresses and ids (qmrestore --unique)")
	fs.BoolVar(&o.keepArchive, "keep-archive", false, "keep the uploaded archive on the node after a successful restore")
	fs.IntVar(&o.level, "level", 0, "zstd level for the upload (default: the fastest)")
	fs.StringVar(&o.dataFile, "data-file", "", "external data file of a qcow2 SOURCE")
	fs.BoolVar(&o.noBacking, "no-backing", false, "refuse a qcow2 SOURCE that has a backing file")
	fs.StringVar(&o.config, "config", "", "qemu-server.conf to use instead of one generated from the flags below")
	fs.StringVar(&o.vm.Name, "name", "", "VM name (default vm<vmid>)")
	fs.IntVar(&o.vm.Memory, "memory", 1024, "memory in MiB")
	fs.IntVar(&o.vm.Cores, "cores", 1, "CPU cores")
	fs.StringVar(&o.vm.Net, "net", "virtio,bridge=vmbr0", "net0 device")
	fs.StringVar(&o.vm.BIOS, "bios", "seabios", "seabios or ovmf")
	fs.BoolVar(&o.vm.Serial, "serial", true, "serial console (serial0: socket)")
	fs.BoolVar(&o.vm.Agent, "agent", true, "enable the QEMU guest agent")
	fs.BoolVar(&o.vm.CloudInit, "cloud-init", false, "add a cloud-init drive")
	fs.StringSliceVar(&o.vm.Tags, "tags", nil, "Proxmox VM tags (comma-separated)")
}

var (
	storageID = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_.-]*$`)
	nodeName  = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$`)
)

// sshTarget is a parsed --host. userGiven and portGiven say whether the
// defaults were overridden, since only given values win over ssh_config.
type sshTarget struct {
	user, host           string
	port                 int
	userGiven, portGiven bool
}

func (t sshTarget) String() string { return net.JoinHostPort(t.host, strconv.Itoa(t.port)) }

func parseHost(s string) (sshTarget, error) {
	t := sshTarget{user: "root", port: 22}
	if u, h, ok := strings.Cut(s, "@"); ok {
		t.user, s, t.userGiven = u, h, true
	}
	if host, port, err := net.SplitHostPort(s); err == nil {
		p, perr := strconv.Atoi(port)
		if perr != nil || p < 1 || p > 65535 {
			return t, fmt.Errorf("--host %q: bad port", s)
		}
		t.host, t.port, t.portGiven = host, p, true
	} else {
		t.host = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	}
	if t.host == "" || t.user == "" || strings.ContainsAny(t.host+t.user, " \t\n/@") {
		return t, fmt.Errorf("--host %q: want [user@]host[:port]", s)
	}
	return t, nil
}

// validate checks a target's settings before anything touches the network.
func (o *deployOptions) validate() error {
	if o.host == "" {
		return fmt.Errorf("--host is required")
	}
	if _, err := parseHost(o.host); err != nil {
		return err
	}
	if o.vmid < 100 || o.vmid > 999999999 {
		return fmt.Errorf("--vmid %d: Proxmox VM ids run from 100 to 999999999", o.vmid)
	}
	for flag, v := range map[string]string{"storage": o.storage, "dump-storage": o.dumpStorage} {
		if !storageID.MatchString(v) {
			return fmt.Errorf("--%s %q is not a Proxmox storage id", flag, v)
		}
	}
	if o.node != "" && !nodeName.MatchString(o.node) {
		return fmt.Errorf("--node %q is not a node name", o.node)
	}
	if !strings.HasPrefix(o.dumpDir, "/") || strings.ContainsAny(o.dumpDir, "\n\x00") {
		return fmt.Errorf("--dump-dir %q must be an absolute path", o.dumpDir)
	}
	switch o.restore {
	case "ssh":
	case "api":
		if o.stream {
			return fmt.Errorf("--stream pipes into qmrestore over SSH; it does not go with --restore api")
		}
	default:
		return fmt.Errorf("--restore %q: want ssh or api", o.restore)
	}
	if o.start && o.template {
		return fmt.Errorf("--start and --template exclude each other: a template cannot run")
	}
	if o.stream && o.keepArchive {
		return fmt.Errorf("--keep-archive has nothing to keep with --stream")
	}
	return o.vm.Validate()
}

// systemSSHConfig is OpenSSH's system-wide client config; tests point it
// elsewhere.
var systemSSHConfig = "/etc/ssh/ssh_config"

// sshSettings resolves how to reach this target over SSH as ssh would:
// --host, --identity and --known-hosts first, then the OpenSSH client
// config (--ssh-config, else ~/.ssh/config and /etc/ssh/ssh_config), for
// Host aliases, HostName, Port, User, IdentityFile, IdentitiesOnly,
// UserKnownHostsFile and ProxyJump. The user defaults to root, as for a
// Proxmox node. getenv supplies HOME and SSH_AUTH_SOCK.
func (o *deployOptions) sshSettings(getenv func(string) string) (remote.Config, error) {
	h, err := parseHost(o.host)
	if err != nil {
		return remote.Config{}, err
	}
	flags := remote.Config{Host: h.host, IdentityFiles: o.identity, KnownHostsFile: o.knownHosts, InsecureIgnoreHostKey: o.insecure}
	if h.userGiven {
		flags.User = h.user
	}
	if h.portGiven {
		flags.Port = h.port
	}
	if sock := getenv("SSH_AUTH_SOCK"); sock != "" {
		flags.UseAgent, flags.AgentSocket = true, sock
	}
	home := getenv("HOME")
	// ssh takes the local user name from the password database.
	local := "root"
	if u, err := user.Current(); err == nil {
		local = u.Username
	}
	opts := remote.SSHConfigOptions{
		UserFile: filepath.Join(home, ".ssh", "config"), SystemFile: systemSSHConfig, MissingOK: true,
		LocalUser: local, Home: home, DefaultUser: "root",
	}
	if o.sshConfig != "" {
		opts.UserFile, opts.SystemFile, opts.MissingOK = o.sshConfig, "", false
	}
	sc, err := remote.ReadSSHConfig(opts)
	if err != nil {
		return remote.Config{}, err
	}
	return sc.Resolve(flags)
}
