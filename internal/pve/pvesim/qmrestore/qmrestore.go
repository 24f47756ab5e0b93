// Package qmrestore restores a VMA archive as a Proxmox VE node does
// (qemu-server src/PVE/QemuServer.pm restore_vma_archive), for the test
// doubles of a node: the restore task of package pvesim and the qmrestore
// of package nodetest. Both need the VM that results, not a fixed one, so
// that a test sees what a real restore would make of the archive it got:
//
//   - the archive's qemu-server.conf becomes the VM's config, each line
//     through restore_update_config_line: #qmdump# and #vzdump# lines,
//     lock, unusedN and parent go; a drive with backup=0 becomes a comment
//     (so part of the description); a drive that a #qmdump#map line maps,
//     and the cloud-init drive, name their new volumes, without format; a
//     vmgenid is made anew, and with unique the MAC addresses and the
//     SMBIOS UUID too;
//   - volumes come from the #qmdump#map lines ($parse_backup_hints): the
//     storage is the restore's --storage if given, else the line's, else
//     "local"; the device must be in the archive ("archive does not
//     contain data for drive"), every device of the archive needs a line
//     ("found no device mapping information for device"), and the storage
//     must exist and hold images; volumes are allocated in the order of the
//     drive keys ($restore_allocate_devices), each vm-VMID-disk-N with the
//     lowest free N (pve-storage src/PVE/Storage/Plugin.pm
//     find_free_diskname), of the device's size in whole KiB;
//   - only once the hints pass is the VM's config replaced with "memory:
//     128" and are the old disks at the drive keys the archive restores
//     freed ($restore_cleanup_oldconf); a failure before leaves the config
//     and every old disk as they were;
//   - the request's own config keys win (restore_merge_config); the
//     config is written as write_vm_config writes it (description first as
//     # lines, then keys sorted), then rescan sets each drive's size to its
//     volume's (LVM rounds up to 4 MiB extents, ZFS to whole MiB) and adds
//     every volume the VM owns that no drive names as unusedN
//     (update_disk_config), printing what it changed;
//   - vma's own failures are printed as vma prints them ("vma: REASON")
//     and reported as run_command reports the pipeline's end, and an error
//     of qemu-server's while it reads vma's output comes wrapped in the
//     same "command '...' failed: " (CommandError).
//
// It also names and sizes volumes as the storage plugins do (DiskName,
// FreeDisk, AllocSize) for every volume the doubles make, and creates the
// disks of a config update as create_disks does (CreateDisk).
//
// The old 1.x "vlanN:" lines that restore_update_config_line converts are
// taken as they are: no archive a test makes has them. Snapshots of a VM
// that force replaces (their vmstate volumes) are not looked at: the
// doubles make none. What create_vm does around the restore
// (src/PVE/API2/Qemu.pm: turning a template's disks into base volumes) is
// left to the callers, which do not do it.
package qmrestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/vmatool/vmatool/vma"
)

// Storage is a storage of the node as a restore sees it.
type Storage struct {
	Type   string // plugin type: "dir", "lvmthin", "zfspool", "nfs", ...
	Images bool   // its content includes images
}

// Node is the node a restore runs on, as the VM being restored sees it:
// the node's storages and volumes, and the VM's config.
type Node interface {
	// Storage looks up a storage by name.
	Storage(name string) (Storage, bool)
	// HasVolume reports whether volume volid exists.
	HasVolume(volid string) bool
	// Volumes lists the node's disk image volumes with their sizes, as
	// vdisk_list finds them (every owner's: rescan keeps the VM's own).
	Volumes() map[string]int64
	// CreateVolume makes volume volid of size bytes (as the storage
	// allocates it) and returns where the disk's data goes.
	CreateVolume(volid, format string, size int64) (io.WriterAt, error)
	// RemoveVolume frees a volume (vdisk_free).
	RemoveVolume(volid string)
	// Config is the VM's config as create_and_lock_config left it: the
	// old one for a VM that force replaces, else empty; with "lock:
	// create" either way.
	Config() []byte
	// SetConfig writes the VM's config.
	SetConfig(conf []byte) error
}

// Options are those of qmrestore and of POST /nodes/{node}/qemu with an
// archive that change what a restore makes.
type Options struct {
	VMID int
	// Storage is --storage; "" keeps each #qmdump#map line's storage.
	Storage string
	Unique  bool // new MAC addresses and SMBIOS UUID
	// Override are the request's own config keys, which replace the
	// archive's (restore_merge_config's override_conf).
	Override map[string]string
	// Command is the pipeline restore_vma_archive runs, as its "restore
	// vma archive:" line prints it: "vma extract -v -r FIFO ARCHIVE|-
	// TMPDIR", after "DECOMPRESSOR ARCHIVE | " for a compressed file. A
	// failure inside it is reported as run_command reports it.
	Command string
	// AfterHeader, when set, runs once the header is read and the backup
	// hints are checked, when the config is "memory: 128" and before any
	// volume is allocated; its error fails the restore there, as a test's
	// injected failure, and is returned as it is.
	AfterHeader func(*vma.Header) error
	// Output receives what the restore prints, line by line: vma extract
	// -v's listing and progress, the volumes and the map.
	Output func(line string)
	// SkipData reads past the disks' data instead of extracting it, for
	// benchmarks that only count what a node receives; the volumes are
	// still allocated.
	SkipData bool
}

// Result is what a restore made.
type Result struct {
	// Config is the VM's new qemu-server.conf, as SetConfig was given it.
	Config []byte
	// Firewall is the archive's qemu-server.fw, which the restore copies
	// to /etc/pve/firewall/VMID.fw; nil if it has none.
	Firewall []byte
	// Volumes are the volumes allocated, in order.
	Volumes []string
	// Read is how many bytes were read from the archive stream.
	Read int64
}

// ErrHeader marks a restore that failed before vma extract had listed the
// archive's header. Such a failure, like one in the backup hints (a
// missing storage, a device without a map line), leaves the config as
// create_and_lock_config made it and the old disks of a VM that force
// replaces all there: only once the hints pass does restore_vma_archive
// replace the config with "memory: 128".
var ErrHeader = errors.New("vma extract failed before the header was read")

// CommandError is a failure of restore_vma_archive's run_command (pve-common
// src/PVE/Cmd.pm run): "command 'set -o pipefail && PIPELINE' failed: "
// and what went wrong. When vma itself fails, it has printed "vma: REASON"
// (QEMU's error_report, as vma's g_error goes through error_init's log
// handler) and died of SIGTRAP: run_command sees "got signal 5" when bash
// ran vma in its own place (a pipeline of one command, which bash execs),
// and "exit code 133" (128 + SIGTRAP, which pipefail passes on) when a
// decompressor runs before it. An error of qemu-server's own while it reads
// vma's output (a backup hint, an allocation) is wrapped the same way.
type CommandError struct {
	Command string // the pipeline, as Options.Command
	Reason  string // what run_command says went wrong
	header  bool
}

func (e *CommandError) Error() string {
	return "command 'set -o pipefail && " + e.Command + "' failed: " + e.Reason
}

// Is makes a failure before the header is listed match ErrHeader.
func (e *CommandError) Is(target error) bool { return e.header && target == ErrHeader }

// vmaFailed is vma dying of g_error: the reason as vma prints it, then
// the exit run_command sees.
func vmaFailed(o *Options, out func(string), reason string, header bool) error {
	out("vma: " + reason)
	exit := "got signal 5"
	if strings.Contains(o.Command, " | ") {
		exit = "exit code 133"
	}
	return &CommandError{Command: o.Command, Reason: exit, header: header}
}

// headerReason is what vma prints when it cannot read the header
// (vma-reader.c vma_reader_read_head, §5.2 of vma-format.md).
func headerReason(err error) string {
	switch {
	case errors.Is(err, vma.ErrShortHeader) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "can't read vma header - got EOF"
	case errors.Is(err, vma.ErrNotVMA):
		return "not a vma file - wrong magic number"
	case errors.Is(err, vma.ErrHeaderChecksum):
		return "wrong vma header chechsum" // sic
	}
	return err.Error()
}

// Restore reads an uncompressed VMA archive from r and restores it onto n
// as VM o.VMID, as restore_vma_archive does once create_vm has locked the
// VM's config: vma extract lists the header; the backup hints are checked;
// the config becomes "memory: 128" and the old disks at the drive keys the
// archive restores are freed ($restore_cleanup_oldconf: the others are
// kept, and rescan lists them as unused); the volumes are allocated; the
// data is extracted; the new config is written and rescanned. A failure
// after volumes were allocated removes them, as $restore_destroy_volumes
// does, and leaves the config at "memory: 128".
func Restore(ctx context.Context, r io.Reader, n Node, o Options) (*Result, error) {
	out := o.Output
	if out == nil {
		out = func(string) {}
	}
	if o.Command == "" {
		o.Command = "vma extract -v -r /var/tmp/vzdumptmp.fifo - /var/tmp/vzdumptmp"
	}
	wrap := func(err error) error { return &CommandError{Command: o.Command, Reason: err.Error()} }
	cr := &countingReader{r: r}
	rd, err := vma.NewReader(cr)
	if err != nil {
		return nil, vmaFailed(&o, out, headerReason(err), true)
	}
	h := rd.Header()
	listing(h, out)
	conf, ok := h.Config("qemu-server.conf")
	if !ok {
		return nil, wrap(errors.New("unable to read qemu-server.conf - No such file or directory"))
	}
	devs, err := backupHints(conf, h, o.Storage, n)
	if err != nil {
		return nil, wrap(err)
	}
	res := &Result{}
	if fw, ok := h.Config("qemu-server.fw"); ok {
		res.Firewall = fw
	}
	old := n.Config()
	if err := n.SetConfig([]byte("memory: 128\n")); err != nil {
		return nil, wrap(err)
	}
	cleanupOldConfig(old, devs, o.VMID, n)
	if o.AfterHeader != nil {
		if err := o.AfterHeader(h); err != nil {
			return nil, err
		}
	}
	fail := func(err error) (*Result, error) {
		for _, volid := range res.Volumes {
			n.RemoveVolume(volid)
			out("temporary volume '" + volid + "' successfully removed")
		}
		return nil, err
	}
	volids := map[string]string{} // drive key → volid
	targets := map[int]io.WriterAt{}
	for _, d := range devs {
		st, _ := n.Storage(d.storage)
		name := ""
		if d.cloudInit {
			name = CloudInitName(st.Type, o.VMID, d.format)
		} else {
			name = DiskName(st.Type, o.VMID, FreeDisk(n, st.Type, d.storage, o.VMID), d.format)
		}
		volid := d.storage + ":" + name
		size := AllocSize(st.Type, d.size)
		w, err := n.CreateVolume(volid, d.format, size)
		if err != nil {
			return fail(wrap(fmt.Errorf("error during vdisk_alloc of %s: %v", volid, err)))
		}
		res.Volumes = append(res.Volumes, volid)
		volids[d.key] = volid
		out("new volume ID is '" + volid + "'")
		if d.cloudInit {
			continue // made anew, not restored
		}
		targets[d.dev.ID] = w
	}
	for _, d := range devs {
		if d.cloudInit {
			continue
		}
		st, _ := n.Storage(d.storage)
		zeros := 0
		if st.Type == "lvm" {
			zeros = 1 // thick LVM lacks sparseinit
		}
		out(fmt.Sprintf("map '%s' to '%s' (write zeros = %d)", d.dev.Name, volumePath(st.Type, volids[d.key]), zeros))
	}
	newConf := updateConfig(conf, volids, o.Unique)

	if o.SkipData {
		if _, err := Drain(cr); err != nil {
			return fail(vmaFailed(&o, out, "restore failed - "+err.Error(), false))
		}
	} else {
		p := newProgress(h, out)
		if err := rd.OnCluster(p.cluster); err != nil {
			return fail(wrap(err))
		}
		if err := vma.Extract(ctx, rd, targets); err != nil {
			return fail(vmaFailed(&o, out, "restore failed - "+err.Error(), false))
		}
	}
	for k, v := range o.Override {
		newConf.main.keys[k] = v
	}
	res.Read = cr.n
	if err := n.SetConfig(newConf.bytes()); err != nil {
		return nil, err
	}
	out("rescan volumes...")
	res.Config = rescan(newConf, o.VMID, n.Volumes(), out)
	if err := n.SetConfig(res.Config); err != nil {
		return nil, err
	}
	return res, nil
}

// cleanupOldConfig is $restore_cleanup_oldconf: of the old config's drives
// that the VM owns, those at a key the archive restores are freed; a
// CD-ROM (not a cloud-init drive) and a path are left alone.
func cleanupOldConfig(old []byte, devs []device, vmid int, n Node) {
	restored := map[string]bool{}
	for _, d := range devs {
		restored[d.key] = true
	}
	c := parseConfig(string(old))
	keys := make([]string, 0, len(c.main.keys))
	for k := range c.main.keys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !driveKeyRE.MatchString(k) || !restored[k] {
			continue
		}
		d := parseDrive(c.main.keys[k])
		if d.opts["media"] == "cdrom" && !IsCloudInit(d.file) || strings.HasPrefix(d.file, "/") {
			continue
		}
		if owner, ok := Owner(d.file); ok && owner == vmid {
			n.RemoveVolume(d.file)
		}
	}
}

// listing prints what vma extract -v prints before the data (vma.c
// dump_config, §6.3 of vma-format.md): one CFG line per config, one DEV line
// per device, then CTIME, which tells qmrestore the header is done.
func listing(h *vma.Header, out func(string)) {
	for _, c := range h.Configs {
		out(fmt.Sprintf("CFG: size: %d name: %s", len(c.Data), c.Name))
	}
	for _, d := range h.Devices {
		if !d.IsVMState() {
			out(fmt.Sprintf("DEV: dev_id=%d size: %d devname: %s", d.ID, d.Size, d.Name))
		}
	}
	out("CTIME: " + h.Ctime.Local().Format("Mon Jan _2 15:04:05 2006"))
}

// progress prints vma extract -v's "progress N% (read B bytes, duration S
// sec)" whenever the whole percentage changes: clusters read out of the
// sum of floor(size/64 KiB) over the devices, which is why it can pass 100.
type progress struct {
	total, read int64
	last        int64
	start       time.Time
	out         func(string)
}

func newProgress(h *vma.Header, out func(string)) *progress {
	p := &progress{last: -1, start: time.Now(), out: out}
	for _, d := range h.Devices {
		p.total += d.Size / vma.ClusterSize
	}
	return p
}

func (p *progress) cluster(vma.Cluster) {
	p.read++
	if p.total == 0 {
		return // vma divides by zero here; print nothing instead
	}
	if pct := p.read * 100 / p.total; pct != p.last {
		p.last = pct
		p.out(fmt.Sprintf("progress %d%% (read %d bytes, duration %d sec)", pct, p.read*vma.ClusterSize, int(time.Since(p.start).Seconds())))
	}
}

// Drain reads r to its end and returns how many bytes it read, 1 MiB at a
// time: io.Discard would read 8 KiB at a time, a system call each, which
// benchmarks would count as the node's cost.
func Drain(r io.Reader) (int64, error) {
	return io.CopyBuffer(writerOnly{io.Discard}, r, make([]byte, 1<<20))
}

// writerOnly hides io.Discard's ReadFrom, which would choose the buffer.
type writerOnly struct{ io.Writer }

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// device is one volume a restore allocates: a #qmdump#map line's device,
// or the cloud-init drive.
type device struct {
	key       string // drive key, e.g. "scsi1"
	dev       vma.Device
	storage   string
	format    string
	size      int64
	cloudInit bool
}

// backupHints is $parse_backup_hints: the devices to allocate, sorted by
// drive key as $restore_allocate_devices takes them.
func backupHints(conf []byte, h *vma.Header, storageOpt string, n Node) ([]device, error) {
	byKey := map[string]device{}
	mapped := map[string]bool{}
	for _, line := range strings.Split(string(conf), "\n") {
		if m := mapLineRE.FindStringSubmatch(line); m != nil {
			key, devname, storage, format := m[1], m[2], m[3], m[4]
			dev, ok := h.Device(devname)
			if !ok || dev.IsVMState() {
				return nil, fmt.Errorf("archive does not contain data for drive '%s'", key)
			}
			if storageOpt != "" {
				storage = storageOpt
			} else if storage == "" {
				storage = "local"
			}
			if format == "" {
				format = "raw"
			}
			st, err := checkStorage(n, storage)
			if err != nil {
				return nil, err
			}
			byKey[key] = device{key: key, dev: dev, storage: storage, format: ResolveFormat(st.Type, format), size: dev.Size}
			mapped[devname] = true
			continue
		}
		m := cloudInitLineRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		file, _, _ := strings.Cut(strings.TrimSpace(m[2]), ",")
		file = strings.TrimPrefix(file, "file=")
		if !IsCloudInit(file) {
			continue
		}
		storage, volname, _ := strings.Cut(file, ":")
		if storageOpt != "" {
			storage = storageOpt
		}
		st, err := checkStorage(n, storage)
		if err != nil {
			return nil, err
		}
		format := "raw" // checked_volume_format fails on a volume the node lacks
		for _, f := range []string{"qcow2", "vmdk", "raw"} {
			if strings.HasSuffix(volname, "."+f) {
				format = f
			}
		}
		byKey[m[1]] = device{key: m[1], storage: storage, format: ResolveFormat(st.Type, format), size: CloudInitSize, cloudInit: true}
	}
	for _, d := range h.Devices {
		if !d.IsVMState() && !mapped[d.Name] {
			return nil, fmt.Errorf("found no device mapping information for device '%s'", d.Name)
		}
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	devs := make([]device, 0, len(keys))
	for _, k := range keys {
		devs = append(devs, byKey[k])
	}
	return devs, nil
}

// checkStorage is $check_storage with storage_config before it.
func checkStorage(n Node, name string) (Storage, error) {
	st, ok := n.Storage(name)
	switch {
	case !ok:
		return st, fmt.Errorf("storage '%s' does not exist", name)
	case !st.Images:
		return st, fmt.Errorf("Content type 'images' is not available on storage '%s'", name)
	}
	return st, nil
}
