// Package deploy turns a disk image or a VMA archive into a VM (or a
// template) on a Proxmox VE node.
//
// A Target says where and how, and is also the schema of a targets file;
// Validate checks it completely, offline. NewPlan validates every target,
// opens the source as each target's settings open it, and records per
// target the restore path, the steps and the config the VM gets: a Plan
// prints as text or JSON for a dry run. Run carries the plan out, several
// targets at once, reporting typed events (StepStarted, StepFinished,
// BytesSent, RestoreProgress, Warning) and returning a Result per target.
// The package never prints, exits or reads the environment: Options
// carries the user's home, SSH agent socket and token.
//
// Plan.Place chooses the node of each target whose Node is NodeAuto from
// the cluster's resources (placement.go), spreading the targets of one
// run. After the restore and the template or start, a target may wait for
// its QEMU guest agent and read its addresses (Wait, wait.go), then put
// the VM under the HA manager (HA, ha.go).
//
// Each restore path (Via) implements one small interface in a file of its
// own (path_*.go):
//   - ViaSSH: upload the archive over SSH into the dump folder, qmrestore it.
//     The node needs SSH (root, or a user who may run qmrestore, qm and
//     pvesh) and room for the archive.
//   - ViaSSHStream: nothing stored; the archive goes zstd-compressed into
//     "zstd -dc | qmrestore - VMID". The node needs SSH and zstd.
//   - ViaAPI: upload over SSH, restore through the API. The node needs SSH,
//     a token, and the dump folder to be the backup folder of a storage with
//     backup content.
//   - ViaImport: no SSH; each disk goes up as qcow2 to a storage with import
//     content and the create call imports it. The node needs Proxmox VE 8.4
//     or later, a token, and import among the storage's content types.
//   - ViaAuto picks ViaSSH when SSH to the host connects, else ViaImport.
//
// Targets deployed at once over ViaSSH or ViaSSHStream whose archives
// differ only in the VM ID, storage and name share one (TargetPlan.Shares):
// the image is read and compressed once, and the stream goes to each
// through a bounded buffer that serves a lagging target from a spill file
// in Options.TempDir; each VM is then named with qm set (StepRename). See
// share.go and fanout.go.
//
// What a real Proxmox VE node does that deploy must handle, and how:
//   - A failed restore leaves the VM's config behind (qemu-server
//     src/PVE/QemuServer.pm restore_vma_archive): once a restore or create
//     got past Proxmox's up-front checks, a later failure removes the VM
//     this run created and says so in a Warning; a VM replaced with Force is
//     reported lost in the error instead.
//   - /cluster/resources?type=vm lists containers too, and a token without
//     VM.Audit sees no guests (pve-manager PVE/API2/Cluster.pm): the ID
//     check refuses containers outright, and the create or restore call's
//     own "VM|CT N already exists" refusal is recognised as well (nothing is
//     deleted then, and the error says the check could not see the guest).
//   - With start=1 a failed start is only a warning in a task that ends OK
//     (qemu-server src/PVE/API2/Qemu.pm): start is never passed to a restore
//     or create; it is a step of its own whose task, or qm start's exit
//     status, is checked.
//   - qm template exits 0 even when its task fails (qemu-server
//     src/PVE/CLI/qm.pm): "template: 1" is confirmed in the config, with qm
//     config over SSH and GET .../config through the API.
//   - The API takes no VMA upload, only iso, vztmpl and import content, and
//     import takes disk images from 8.4 on (pve-storage
//     src/PVE/API2/Storage/Status.pm): ViaImport checks the node's version
//     and the storage's content types before uploading, uploads qcow2 with
//     its SHA-256, and converts an image with a backing or data file, which
//     the upload task's qemu-img check refuses (pve-storage
//     src/PVE/Storage/Plugin.pm file_size_info).
//   - An upload overwrites a file of the same name (Status.pm): ViaImport
//     refuses a name already on the storage.
//   - An EFI disk or TPM state imported by a create must spell out efitype
//     and pre-enrolled-keys, or version (qemu-server src/PVE/API2/Qemu.pm
//     check_drive_param): the config's values, or Proxmox's defaults, are
//     written out.
//   - qmrestore - reads only an uncompressed VMA (qemu-server
//     src/PVE/CLI/qmrestore.pm): ViaSSHStream decompresses on the node, and
//     checks for zstd first, since an empty stream would leave an empty
//     config behind.
//   - On Proxmox VE 9, HA groups became HA rules (pve-ha-manager 5.0):
//     an HA group is refused in the check step, before anything is sent,
//     when the node's version is 9 or later.
//   - The cluster view's storage rows of an offline node say "unknown"
//     (pve-manager PVE/API2/Cluster.pm): placement takes only online nodes
//     whose storage is "available".
package deploy
