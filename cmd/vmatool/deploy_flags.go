package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/vmatool/vmatool/internal/deploy"
)

// bindTargetFlags binds the per-target flags onto t, with t's current
// values as their defaults, so that binding them changes nothing: deploy
// binds them onto the defaults to parse its command line, and
// deployOptions.override binds them again to carry the flags given onto
// each target of a targets file. The flags are not the schema:
// deploy.Target's JSON tags are.
func bindTargetFlags(fs *pflag.FlagSet, t *deploy.Target) {
	fs.StringVar(&t.Host, "host", t.Host, "Proxmox node, [user@]host[:port]: SSH goes there (user root), and the API too unless --api-url")
	fs.IntVar(&t.VMID, "vmid", t.VMID, "VM ID to create (100 to 999999999)")
	fs.StringVar(&t.Storage, "storage", t.Storage, "storage for the VM's disks")
	fs.Var((*viaValue)(&t.Via), "via", "restore path: auto, ssh, ssh-stream, api or import (see above)")
	fs.StringVar(&t.Restore, "restore", t.Restore, "older spelling: --restore ssh is --via ssh, --restore api is --via api")
	fs.BoolVar(&t.Stream, "stream", t.Stream, "older spelling of --via ssh-stream")
	fs.StringVar(&t.Node, "node", t.Node, "node name in the cluster (default: the host's short name, or the API's only node); auto places the VM on the online node with the storage, room on it, and the most free memory")

	fs.StringArrayVarP((*[]string)(&t.Identity), "identity", "i", t.Identity, "SSH private key file (repeatable; default: ssh-agent, then ~/.ssh/id_*)")
	fs.StringVar(&t.KnownHosts, "known-hosts", t.KnownHosts, "known_hosts file to check the host key against (default ~/.ssh/known_hosts)")
	fs.BoolVar(&t.InsecureIgnoreHostKey, "insecure-ignore-host-key", t.InsecureIgnoreHostKey, "do not check the node's SSH host key (says so on stderr)")
	fs.StringVar(&t.DumpDir, "dump-dir", t.DumpDir, "folder on the node the archive is uploaded to (ssh, api)")
	fs.StringVar(&t.DumpStorage, "dump-storage", t.DumpStorage, "storage whose backup folder is --dump-dir (api)")

	fs.StringVar(&t.APIURL, "api-url", t.APIURL, "Proxmox API URL (default https://<host>:8006)")
	fs.StringVar(&t.TokenFile, "token-file", t.TokenFile, "file holding the API token USER@REALM!ID=SECRET (default: $PVE_TOKEN)")
	fs.StringVar(&t.TLSFingerprint, "tls-fingerprint", t.TLSFingerprint, "SHA-256 fingerprint of the API's certificate, to pin a self-signed one")
	fs.StringVar(&t.ImportStorage, "import-storage", t.ImportStorage, "storage with import content that takes the disk images (import)")

	fs.BoolVar(&t.Start, "start", t.Start, "start the VM, and confirm it started")
	fs.BoolVar(&t.Template, "template", t.Template, "convert the VM to a template, and confirm it")
	fs.BoolVar(&t.Force, "force", t.Force, "replace an existing VM with the same ID on this node")
	fs.BoolVar(&t.Unique, "unique", t.Unique, "give the VM new MAC addresses (qmrestore --unique)")
	fs.BoolVar(&t.KeepArchive, "keep-archive", t.KeepArchive, "keep the uploaded archive on the node (ssh, api)")
	fs.IntVar(&t.Level, "level", t.Level, "zstd level of what is sent (default: the fastest)")
	fs.StringVar(&t.Wait, "wait", t.Wait, "agent: start the VM and wait until its QEMU guest agent answers, then show its IP addresses")
	fs.DurationVar((*time.Duration)(&t.WaitTimeout), "wait-timeout", time.Duration(t.WaitTimeout), "how long --wait waits before the target fails")
	fs.BoolVar(&t.HA, "ha", t.HA, "put the VM under the HA manager once made (state started if started, else stopped)")
	fs.StringVar(&t.HAGroup, "ha-group", t.HAGroup, "HA group for --ha (Proxmox VE 8 and older: 9 replaced groups with rules)")
	fs.BoolVar(&t.DestroyOnFailure, "destroy-on-failure", t.DestroyOnFailure, "remove the VM this run made when --wait or --ha fails (a failed restore, template or start always removes it)")

	fs.StringVar(&t.DataFile, "data-file", t.DataFile, "external data file of a qcow2 SOURCE")
	fs.BoolVar(&t.NoBacking, "no-backing", t.NoBacking, "refuse a qcow2 SOURCE that has a backing file")
	fs.StringVar(&t.Config, "config", t.Config, "qemu-server.conf to use instead of one generated from the flags below")
	fs.StringVar(&t.VMName, "name", t.VMName, "VM name (default vm<vmid>)")
	fs.IntVar(&t.Memory, "memory", t.Memory, "memory in MiB")
	fs.IntVar(&t.Cores, "cores", t.Cores, "CPU cores")
	fs.StringArrayVar((*[]string)(&t.Net), "net", t.Net, "network device as qm set --netN takes it, led by its key: net0=virtio,bridge=vmbr0,tag=20 (repeatable; a MAC is assigned by Proxmox when none is given)")
	fs.StringVar(&t.BIOS, "bios", t.BIOS, "seabios or ovmf (ovmf: an EFI vars disk is created on --storage when the image has none)")
	fs.StringVar(&t.EFIType, "efitype", t.EFIType, "OVMF vars layout of the EFI disk, 4m or 2m (--bios ovmf)")
	fs.BoolVar(&t.PreEnrolledKeys, "pre-enrolled-keys", t.PreEnrolledKeys, "enroll the Secure Boot keys in the created EFI disk, turning Secure Boot on (--bios ovmf, efitype 4m)")
	fs.BoolVar(&t.TPM, "tpm", t.TPM, "add a TPM v2.0 state disk on --storage")
	fs.StringArrayVar((*[]string)(&t.Disks), "disk", t.Disks, "extra disk image packed into the same archive, KEY=PATH: scsi1=data.qcow2 (repeatable)")
	fs.BoolVar(&t.Serial, "serial", t.Serial, "serial console (serial0: socket)")
	fs.BoolVar(&t.Agent, "agent", t.Agent, "enable the QEMU guest agent")
	fs.BoolVar(&t.CloudInit, "cloud-init", t.CloudInit, "add a cloud-init drive, allocated on --storage by the restore")
	fs.StringSliceVar((*[]string)(&t.VMTags), "tags", t.VMTags, "Proxmox VM tags (comma-separated)")
}

// viaValue is --via: one of the registered paths or auto, checked with
// the rest of the target by deploy.Target.Validate.
type viaValue deploy.Via

func (v *viaValue) String() string { return string(*v) }

func (v *viaValue) Set(s string) error {
	if s == "" || strings.ContainsAny(s, " \t\n") {
		return fmt.Errorf("want auto, ssh, ssh-stream, api or import")
	}
	*v = viaValue(s)
	return nil
}

func (v *viaValue) Type() string { return "PATH" }
