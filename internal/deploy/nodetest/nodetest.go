// Package nodetest runs a stand-in Proxmox VE node for tests of deploy: a
// real sshd (package sshtest) whose qmrestore, qm and pvesh behave as
// Proxmox's own do where deploy can tell, with the node's state in files
// (guest configs under nodes/<node>/qemu-server and nodes/<node>/lxc, as
// in /etc/pve). zstd is the real one, as on a node.
//
// What the stand-ins reproduce, and from where:
//   - qmrestore (qemu-server src/PVE/CLI/qmrestore.pm, src/PVE/API2/Qemu.pm
//     create_vm, src/PVE/QemuServer.pm restore_vma_archive): an ID held by
//     a VM or container anywhere in the cluster is refused up front ("VM|CT
//     N already exists on node 'X'") unless force is given for a VM on
//     this node; a locked VM and a missing archive are refused up front;
//     otherwise the config is created locked, and everything after is the
//     task's: a running VM, a file name archive_info does not know ("ERROR:
//     couldn't determine archive info from 'PATH'", pve-storage
//     src/PVE/Storage.pm), vma extract's and the restore's own failures. A
//     failed task prints create_vm's "state is NOT cleaned up" warning on
//     standard output and its error alone on standard error (the CLI's
//     fork_worker, pve-common src/PVE/RESTEnvironment.pm), exits non-zero,
//     and leaves the config behind, unlocked: as it was (empty for a new
//     VM) when it failed before the backup hints passed, "memory: 128"
//     after. "-" reads an uncompressed VMA from standard input; a file is
//     read through the decompressor its name picks (the real zstd, as on a
//     node). What it read is kept (Received), as sent.
//     The restore itself is package qmrestore's, as in the API
//     simulator: the VM's config is the archive's, each drive on a new
//     volume named, sized and placed as restore_vma_archive does (the
//     #qmdump#map lines, --storage, LVM's 4 MiB extents, ZFS's whole
//     MiB), holding the disk (Volume); a VM force replaces loses only its
//     disks at the keys the archive restores, the others become unused;
//     the archive's firewall config is copied (Firewall); it prints vma
//     extract -v's listing and "progress N% (read ...)" lines on standard
//     output, as qmrestore does. The storages are those of the cluster
//     view (SetCluster) on this node: one it lacks does not exist
//     ("storage 'X' does not exist"), as on a real node.
//     The test binary does that work: Start links it into the node's PATH
//     as nodetest-helper, which an init function recognises.
//   - qm start exits non-zero when its task fails; qm template exits 0
//     even when its task fails, leaving the config without "template: 1"
//     (qemu-server src/PVE/CLI/qm.pm), and refuses a running VM up front;
//     qm destroy refuses a locked or running VM; qm config prints the
//     config; qm set VMID --KEY VALUE... changes the config at once,
//     creating a disk given as STORAGE:SIZE as the API simulator's config
//     update does (qmrestore.CreateDisk: create_disks in qemu-server
//     src/PVE/API2/Qemu.pm, the EFI disk as large as its volume, 4M on
//     LVM), freeing what it made if one fails, and giving a net device
//     without a MAC address one (parse_net); a missing config is
//     "Configuration file 'nodes/N/qemu-server/ID.conf' does not exist".
//   - pvesh get /cluster/resources --type vm --output-format json prints
//     the bare array of VMs and containers of every node (pve-manager
//     PVE/API2/Cluster.pm), vmid as a number.
//   - pvesh get /cluster/resources --output-format json without --type
//     adds the rows of type node and storage that SetCluster gives (by
//     default this node, online, with local and local-lvm as on a fresh
//     install); pvesh get /version prints the version SetVersion gives.
//   - qm guest cmd VMID ping|network-get-interfaces answers as qemu-server
//     src/PVE/API2/Qemu/Agent.pm does: "No QEMU guest agent configured"
//     without "agent: 1" in the config, "VM N is not running", "QEMU guest
//     agent is not running" until the agent answers (SetAgent), then the
//     result as JSON; qm stop stops a running VM and is content with a
//     stopped one; qm destroy removes the VM's volumes with its config.
//   - ha-manager add vm:ID [--state S] [--group G] (pve-ha-manager
//     src/PVE/CLI/ha_manager.pm) refuses a VM the cluster does not have,
//     one already added, and on Proxmox VE 9 any group (groups became
//     rules); qm start and qm stop of an HA-managed VM request the state
//     ("Requesting HA start for VM N"); qm destroy refuses an HA-managed VM
//     without --purge 1 and removes it from HA with it.
//   - The node name is uname -n up to the first dot. StartCluster runs a
//     stand-in per node, each with its own name, sharing one cluster state.
package nodetest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmatool/vmatool/internal/pve/pvesim"
	"github.com/vmatool/vmatool/internal/remote/sshtest"
)

// Node is a running stand-in node. Its fields are read-only.
type Node struct {
	SSH  *sshtest.Server
	Name string // the node's name: uname -n up to the first dot
	Dir  string // the node's state
	Dump string // the dump folder (/var/lib/vz/dump on a real node)
}

// Start runs a stand-in node for t; it is skipped like sshtest.Start when
// sshd is missing.
func Start(t testing.TB) *Node {
	t.Helper()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	name, _, _ := strings.Cut(host, ".")
	return start(t, t.TempDir(), name, "dump", false)
}

// StartCluster runs a stand-in node for each name, each its own sshd whose
// uname -n prints its name, sharing the cluster's state: guests, HA
// resources and the cluster view are the same from every node, as
// /etc/pve is. Each node has its own dump folder.
func StartCluster(t testing.TB, names ...string) []*Node {
	t.Helper()
	dir := t.TempDir()
	var nodes []*Node
	for _, name := range names {
		nodes = append(nodes, start(t, dir, name, "dump-"+name, true))
	}
	var rows []ClusterNode
	for _, name := range names {
		rows = append(rows, DefaultClusterNode(name))
	}
	nodes[0].SetCluster(t, rows...)
	return nodes
}

func start(t testing.TB, dir, name, dump string, ownName bool) *Node {
	t.Helper()
	srv := sshtest.Start(t)
	n := &Node{SSH: srv, Name: name, Dir: dir}
	n.Dump = filepath.Join(n.Dir, dump)
	for _, d := range []string{dump, "log", "received", "running", "fail", "agent", "ha", "firewall", "images", "nodes/" + name + "/qemu-server", "nodes/" + name + "/lxc"} {
		if err := os.MkdirAll(filepath.Join(n.Dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if ownName {
		srv.AddCommand(t, "uname", `if [ "$1" = -n ]; then echo `+shellQuote(name)+`; else exec /bin/uname "$@"; fi`)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(exe, filepath.Join(srv.BinDir, helperName)); err != nil {
		t.Fatal(err)
	}
	q := shellQuote(n.Dir)
	srv.AddCommand(t, "qmrestore", "D="+q+"\n"+qmrestoreScript)
	srv.AddCommand(t, "qm", "D="+q+"\n"+qmScript)
	srv.AddCommand(t, "pvesh", "D="+q+"\n"+pveshScript)
	srv.AddCommand(t, "ha-manager", "D="+q+"\n"+haManagerScript)
	if _, err := os.Stat(filepath.Join(n.Dir, "cluster-node.json")); err != nil {
		n.SetCluster(t, DefaultClusterNode(name))
	}
	return n
}

// Host is the node as deploy's Target.Host spells it.
func (n *Node) Host() string { return n.SSH.User + "@" + n.SSH.Addr }

// AddGuest puts a guest's config on node ("" for this one); typ is "qemu"
// or "lxc".
func (n *Node) AddGuest(t testing.TB, vmid int, typ, node, conf string) {
	t.Helper()
	if node == "" {
		node = n.Name
	}
	dir := "qemu-server"
	if typ == "lxc" {
		dir = "lxc"
	}
	p := filepath.Join(n.Dir, "nodes", node, dir, strconv.Itoa(vmid)+".conf")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Config returns the config of VM vmid on this node, and whether it has
// one.
func (n *Node) Config(vmid int) (string, bool) {
	b, err := os.ReadFile(filepath.Join(n.Dir, "nodes", n.Name, "qemu-server", strconv.Itoa(vmid)+".conf"))
	return string(b), err == nil
}

// Guests lists the IDs of every guest config on every node.
func (n *Node) Guests() []int {
	var ids []int
	for _, kind := range []string{"qemu-server", "lxc"} {
		m, _ := filepath.Glob(filepath.Join(n.Dir, "nodes", "*", kind, "*.conf"))
		for _, p := range m {
			id, _ := strconv.Atoi(strings.TrimSuffix(filepath.Base(p), ".conf"))
			ids = append(ids, id)
		}
	}
	sort.Ints(ids)
	return ids
}

// Volume returns the content of volume volid ("local-lvm:vm-100-disk-1")
// on this node, as the guest sees the disk, and whether it exists.
func (n *Node) Volume(volid string) ([]byte, bool) {
	b, err := os.ReadFile((&fileNode{dir: n.Dir, node: n.Name}).volumePath(volid))
	return b, err == nil
}

// Volumes lists the volumes of storage on this node.
func (n *Node) Volumes(storage string) []string {
	root := filepath.Join(n.Dir, "images", n.Name, storage)
	var ids []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			ids = append(ids, storage+":"+filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(ids)
	return ids
}

// Firewall returns the firewall config a restore of vmid copied from its
// archive (/etc/pve/firewall/VMID.fw on a real node), and whether it did.
func (n *Node) Firewall(vmid int) (string, bool) {
	b, err := os.ReadFile(filepath.Join(n.Dir, "firewall", strconv.Itoa(vmid)+".fw"))
	return string(b), err == nil
}

// Running reports whether VM vmid was started.
func (n *Node) Running(vmid int) bool {
	_, err := os.Stat(filepath.Join(n.Dir, "running", strconv.Itoa(vmid)))
	return err == nil
}

// Received is the file that holds what qmrestore read for vmid: the
// stream from standard input, or a copy of the archive file it was given
// (compressed as it was).
func (n *Node) Received(vmid int) string {
	return filepath.Join(n.Dir, "received", "restored-"+strconv.Itoa(vmid)+".vma")
}

// ReceivedBytes is what qmrestore counted for vmid under CountOnly.
func (n *Node) ReceivedBytes(t testing.TB, vmid int) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.Dir, "received", strconv.Itoa(vmid)+".bytes"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Calls returns the argument lines cmd ("qm", "qmrestore", "pvesh") was
// run with, in order.
func (n *Node) Calls(cmd string) []string {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "log", cmd+".log"))
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// FailRestore makes the next restore fail once the archive's header was
// read and its backup hints passed (the config is "memory: 128" then, and
// no volume is allocated yet), printing msg as qmrestore's error.
func (n *Node) FailRestore(t testing.TB, msg string) { n.writeState(t, "fail/restore", msg) }

// FailStart makes starts of vmid fail with msg.
func (n *Node) FailStart(t testing.TB, vmid int, msg string) {
	n.writeState(t, "fail/start-"+strconv.Itoa(vmid), msg)
}

// FailTemplate makes the next template task of vmid fail with msg, while
// qm template still exits 0.
func (n *Node) FailTemplate(t testing.TB, vmid int, msg string) {
	n.writeState(t, "fail/template-"+strconv.Itoa(vmid), msg)
}

// FailConfig makes the next qm set of vmid fail with msg, changing
// nothing.
func (n *Node) FailConfig(t testing.TB, vmid int, msg string) {
	n.writeState(t, "fail/config-"+strconv.Itoa(vmid), msg)
}

// SetRunning marks VM vmid as running, started now.
func (n *Node) SetRunning(t testing.TB, vmid int) {
	n.writeState(t, "running/"+strconv.Itoa(vmid), strconv.FormatInt(time.Now().UnixMilli(), 10))
}

// Agent configures the guest agent of a VM, as for the API simulator.
type Agent = pvesim.Agent

// Interface is a network interface the guest agent reports.
type Interface = pvesim.Interface

// SetAgent configures the guest agent of VM vmid; without it the agent
// answers as soon as the VM runs. The VM still needs "agent: 1" in its
// config.
func (n *Node) SetAgent(t testing.TB, vmid int, a Agent) {
	t.Helper()
	delay := strconv.FormatInt(a.Delay.Milliseconds(), 10)
	if a.Never {
		delay = "never"
	}
	n.writeState(t, "agent/"+strconv.Itoa(vmid)+".delay", delay)
	if a.Interfaces != nil {
		n.writeState(t, "agent/"+strconv.Itoa(vmid)+".json", string(interfacesJSON(a.Interfaces)))
	}
}

// interfacesJSON is the result of network-get-interfaces as qm guest cmd
// prints it.
func interfacesJSON(ifs []Interface) []byte {
	b, _ := json.MarshalIndent(pvesim.AgentInterfaces(ifs), "", "   ")
	return append(b, '\n')
}

// ClusterNode is a node as pvesh get /cluster/resources shows it, with
// its storages.
type ClusterNode struct {
	Name     string
	Status   string // "online" or "offline"
	Mem      uint64 // bytes in use
	MaxMem   uint64
	Storages []ClusterStorage
}

// ClusterStorage is a storage row of the cluster view.
type ClusterStorage struct {
	Name string
	// Type is the plugin type, "dir" (the default), "lvmthin", "zfspool",
	// ...; it decides how restored volumes are named and sized.
	Type    string
	Content []string
	Disk    uint64 // bytes used
	MaxDisk uint64
	Shared  bool
	Status  string // default "available"
}

// DefaultClusterNode is a fresh install: online, 64 GiB of which 8 in
// use, local (backup, iso, vztmpl) and local-lvm (images, rootdir).
func DefaultClusterNode(name string) ClusterNode {
	return ClusterNode{Name: name, Status: "online", Mem: 8 << 30, MaxMem: 64 << 30, Storages: []ClusterStorage{
		{Name: "local", Type: "dir", Content: []string{"backup", "iso", "vztmpl"}, Disk: 10 << 30, MaxDisk: 100 << 30},
		{Name: "local-lvm", Type: "lvmthin", Content: []string{"images", "rootdir"}, Disk: 50 << 30, MaxDisk: 400 << 30},
	}}
}

// LocalZFS is the storage a node installed on ZFS has for guests,
// local-zfs of type zfspool (images, rootdir), to add to a node's
// Storages: a restore onto a storage the view lacks fails, as it does on a
// real node.
func LocalZFS() ClusterStorage {
	return ClusterStorage{Name: "local-zfs", Type: "zfspool", Content: []string{"images", "rootdir"}, Disk: 20 << 30, MaxDisk: 400 << 30}
}

// SetCluster sets the node and storage rows of the cluster view.
func (n *Node) SetCluster(t testing.TB, nodes ...ClusterNode) {
	t.Helper()
	var nodeRows, storageRows []string
	for _, cn := range nodes {
		b, _ := json.Marshal(map[string]any{"id": "node/" + cn.Name, "type": "node", "node": cn.Name, "status": cn.Status,
			"mem": cn.Mem, "maxmem": cn.MaxMem, "maxcpu": 16, "cpu": 0.05})
		nodeRows = append(nodeRows, string(b))
		for _, st := range cn.Storages {
			status, typ := st.Status, st.Type
			if status == "" {
				status = "available"
			}
			if typ == "" {
				typ = "dir"
			}
			b, _ := json.Marshal(map[string]any{"id": "storage/" + cn.Name + "/" + st.Name, "type": "storage", "storage": st.Name,
				"node": cn.Name, "content": strings.Join(st.Content, ","), "disk": st.Disk, "maxdisk": st.MaxDisk,
				"status": status, "plugintype": typ, "shared": map[bool]int{true: 1}[st.Shared]})
			storageRows = append(storageRows, string(b))
		}
	}
	n.writeState(t, "cluster-node.json", strings.Join(nodeRows, ","))
	n.writeState(t, "cluster-storage.json", strings.Join(storageRows, ","))
}

// SetVersion sets the pve-manager version pvesh get /version reports
// (default 8.4.1).
func (n *Node) SetVersion(t testing.TB, v string) { n.writeState(t, "version", v) }

// HA returns the state and group VM vmid was put under the HA manager
// with, and whether it was.
func (n *Node) HA(vmid int) (state, group string, ok bool) {
	b, err := os.ReadFile(filepath.Join(n.Dir, "ha", "vm:"+strconv.Itoa(vmid)))
	if err != nil {
		return "", "", false
	}
	state, group, _ = strings.Cut(strings.TrimSpace(string(b)), " ")
	return state, group, true
}

// CountOnly makes qmrestore count the bytes it reads from standard input
// (ReceivedBytes) instead of keeping them, for benchmarks of large images.
func (n *Node) CountOnly(t testing.TB) { n.writeState(t, "countonly", "") }

// DiscardData makes the node's zstd decode each stream only as far as
// the archive's header and read the rest without decoding it, and its
// qmrestore count what it receives (CountOnly): a benchmark then times the
// sender and SSH, not a decompression that real nodes do each on their
// own CPU, while the VM is still made from the archive's config.
func (n *Node) DiscardData(t testing.TB) {
	n.CountOnly(t)
	n.SSH.AddCommand(t, "zstd", `[ "$1" = --version ] && { echo "stand-in zstd: decodes headers only"; exit 0; }
exec `+helperName+` zstd-head`)
}

// WithoutZstd makes zstd missing on the node, as the shell reports it.
func (n *Node) WithoutZstd(t testing.TB) {
	n.SSH.AddCommand(t, "zstd", `echo "sh: 1: zstd: not found" >&2; exit 127`)
}

func (n *Node) writeState(t testing.TB, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(n.Dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// common starts each script: the node's name and how to fail.
const common = `node=$(uname -n); node=${node%%.*}
die() { printf '%s\n' "$*" >&2; exit 255; }
confpath() { printf '%s/nodes/%s/qemu-server/%s.conf' "$D" "$node" "$1"; }
`

// qmrestoreScript makes its up-front checks and locks the config; the
// rest is the task: a file must have a name archive_info knows (pve-storage
// src/PVE/Storage.pm), then the helper (helper.go) restores what vma
// extract would read (the stream, or the file through the decompressor its
// name picks), keeping a copy of what it read in received/. A failure in
// the task prints create_vm's warning and takes the lock off the config.
const qmrestoreScript = common + `printf '%s\n' "$*" >> "$D/log/qmrestore.log"
[ $# -ge 2 ] || die "400 not enough arguments"
archive=$1; vmid=$2; shift 2
force=0; storage=; unique=0
while [ $# -gt 0 ]; do
	case $1 in
	--force) force=$2 ;;
	--storage) storage=$2 ;;
	--unique) unique=$2 ;;
	--start|--pool|--bwlimit) ;;
	*) die "400 unknown option $1" ;;
	esac
	shift 2
done
if [ "$archive" != - ]; then
	[ -f "$archive" ] || die "can't find file '$archive'"
	archive=$(realpath -- "$archive")
fi
conf=$(confpath "$vmid")
for f in "$D"/nodes/*/qemu-server/"$vmid".conf "$D"/nodes/*/lxc/"$vmid".conf; do
	[ -e "$f" ] || continue
	owner=${f#"$D"/nodes/}; owner=${owner%%/*}
	kind=VM; case $f in */lxc/*) kind=CT ;; esac
	if [ "$force" != 1 ] || [ $kind = CT ] || [ "$owner" != "$node" ]; then
		die "unable to restore VM $vmid - $kind $vmid already exists on node '$owner'"
	fi
	grep -q '^lock:' "$f" && die "unable to restore VM $vmid - VM is locked ($(sed -n 's/^lock: //p' "$f"))"
done
# create_and_lock_config: the config exists, locked, from here on.
if [ -e "$conf" ]; then echo "lock: create" >> "$conf"; else echo "lock: create" > "$conf"; fi
# A failure from here on is the task's.
taskfail() {
	sed -i '/^lock: create$/d' "$conf"
	echo "error before or during data restore, some or all disks were not completely restored. VM $vmid state is NOT cleaned up."
	die "$1"
}
[ -e "$D/running/$vmid" ] && taskfail "unable to restore VM $vmid - vm is running"
tmp=/var/tmp/vzdumptmp$$
vmacmd="vma extract -v -r $tmp.fifo - $tmp"
restore() { nodetest-helper restore "$D" "$node" "$vmid" "$storage" "$unique" "$1"; }
if [ "$archive" = - ]; then
	echo "restore vma archive: $vmacmd"
	if [ -e "$D/countonly" ]; then
		restore "$vmacmd"
		exit
	fi
	cat > "$D/received/restored-$vmid.vma"
	restore "$vmacmd" < "$D/received/restored-$vmid.vma"
	exit
fi
case ${archive##*/} in
vzdump-qemu-*.vma|vzdump-qemu-*.vma.zst|vzdump-qemu-*.vma.gz|vzdump-qemu-*.vma.lzo|vzdump-qemu-*.vma.bz2) ;;
*) taskfail "ERROR: couldn't determine archive info from '$archive'" ;;
esac
cp -- "$archive" "$D/received/restored-$vmid.vma"
case $archive in
*.zst) dec="zstd -q -d -c" ;; *.gz) dec=zcat ;; *.lzo) dec="lzop -d -c" ;; *.bz2) dec="bzcat -q" ;; *) dec= ;;
esac
if [ -z "$dec" ]; then
	vmacmd="vma extract -v -r $tmp.fifo $archive $tmp"
	echo "restore vma archive: $vmacmd"
	restore "$vmacmd" < "$archive"
	exit
fi
echo "restore vma archive: $dec $archive | $vmacmd"
# The decompressor's complaints are the task's output, as the helper's are.
{ $dec "$archive" 2>&3 | restore "$dec $archive | $vmacmd"; } 3>&1
`

const qmScript = common + `cmd=$1; vmid=$2
[ "$cmd" = guest ] && vmid=$3
printf '%s\n' "$*" >> "$D/log/qm.log"
conf=$(confpath "$vmid")
[ -e "$conf" ] || { echo "Configuration file 'nodes/$node/qemu-server/$vmid.conf' does not exist" >&2; exit 2; }
lock=$(sed -n 's/^lock: //p' "$conf")
ha=$D/ha/vm:$vmid
now() { date +%s%3N; }
case $cmd in
config)
	grep -v '^$' "$conf" | sort ;;
start)
	if [ -e "$ha" ]; then
		echo "Requesting HA start for VM $vmid"
		sed -i 's/^[a-z]*/started/' "$ha"
		[ -e "$D/running/$vmid" ] || now > "$D/running/$vmid"
		exit 0
	fi
	[ -z "$lock" ] || die "VM is locked ($lock)"
	grep -q '^template: 1' "$conf" && die "you can't start a vm if it's a template"
	[ -e "$D/running/$vmid" ] && die "VM $vmid already running"
	if [ -e "$D/fail/start-$vmid" ]; then die "$(cat "$D/fail/start-$vmid")"; fi
	now > "$D/running/$vmid" ;;
stop)
	if [ -e "$ha" ]; then
		echo "Requesting HA stop for VM $vmid"
		sed -i 's/^[a-z]*/stopped/' "$ha"
	fi
	rm -f "$D/running/$vmid" ;;
guest)
	[ "$2" = cmd ] || die "unknown command 'qm guest $2'"
	grep -Eq '^agent: (1|enabled=1)(,|$)' "$conf" || die "No QEMU guest agent configured"
	[ -e "$D/running/$vmid" ] || die "VM $vmid is not running"
	delay=$(cat "$D/agent/$vmid.delay" 2>/dev/null || echo 0)
	[ "$delay" = never ] && die "QEMU guest agent is not running"
	started=$(cat "$D/running/$vmid"); started=${started:-0}
	[ $(( $(now) - started )) -ge "$delay" ] || die "QEMU guest agent is not running"
	case $4 in
	ping) echo '{}' ;;
	network-get-interfaces)
		if [ -e "$D/agent/$vmid.json" ]; then cat "$D/agent/$vmid.json"; else cat <<'EOJ'
[{"hardware-address":"00:00:00:00:00:00","ip-addresses":[{"ip-address":"127.0.0.1","ip-address-type":"ipv4","prefix":8},{"ip-address":"::1","ip-address-type":"ipv6","prefix":128}],"name":"lo"},
 {"hardware-address":"bc:24:11:00:00:01","ip-addresses":[{"ip-address":"192.0.2.10","ip-address-type":"ipv4","prefix":24}],"name":"eth0"}]
EOJ
		fi ;;
	*) die "400 Parameter verification failed. command: value '$4' does not have a value in the enumeration" ;;
	esac ;;
template)
	[ -z "$lock" ] || die "VM is locked ($lock)"
	[ -e "$D/running/$vmid" ] && die "you can't convert a VM to template if VM is running"
	grep -q '^template: 1' "$conf" && die "you can't convert a template to a template"
	if [ -e "$D/fail/template-$vmid" ]; then
		# The task fails, but qm template does not report it.
		cat "$D/fail/template-$vmid" >&2; rm -f "$D/fail/template-$vmid"
		exit 0
	fi
	echo "template: 1" >> "$conf" ;;
set)
	[ -z "$lock" ] || die "VM is locked ($lock)"
	if [ -e "$D/fail/config-$vmid" ]; then msg=$(cat "$D/fail/config-$vmid"); rm -f "$D/fail/config-$vmid"; die "$msg"; fi
	shift 2
	new=$D/received/$vmid.set
	cp "$conf" "$new"
	made=
	while [ $# -gt 0 ]; do
		key=${1#--}; val=$2; shift 2
		case $key in
		efidisk0|tpmstate0|scsi[0-9]*|virtio[0-9]*|sata[0-9]*|ide[0-9]*)
			if printf '%s' "$val" | grep -Eq '^([^/:[:space:]]+:)?[0-9]+(\.[0-9]+)?(,|$)'; then
				# create_disks: a new volume, vm-ID-disk-N.
				if ! val=$(nodetest-helper set-disk "$D" "$node" "$vmid" "$key" "$val"); then
					# create_disks frees the disks it made before the failure.
					for v in $made; do rm -f "$D/images/$node/${v%%:*}/${v#*:}"; done
					rm -f "$new"
					exit 255
				fi
				made="$made ${val%%,*}"
			fi ;;
		net[0-9]*)
			# parse_net: a device without a MAC address gets one.
			first=${val%%,*}; rest=
			case $val in *,*) rest=,${val#*,} ;; esac
			case $first in
			*=*) ;;
			*) val="$first=BC:24:11:$(od -An -N3 -tx1 /dev/urandom | tr a-f A-F | awk '{print $1":"$2":"$3}')$rest" ;;
			esac ;;
		*) ;;
		esac
		sed -i "/^$key: /d" "$new"
		printf '%s: %s\n' "$key" "$val" >> "$new"
	done
	# write_vm_config: the description, then the keys sorted.
	{ grep '^#' "$new"; grep -v -e '^#' -e '^$' "$new" | LC_ALL=C sort; } > "$conf"
	rm -f "$new" ;;
destroy)
	if [ -e "$ha" ]; then
		case " $* " in *" --purge 1 "*) ;; *) die "unable to remove VM $vmid - used in HA resources and purge parameter not set." ;; esac
	fi
	[ -e "$D/running/$vmid" ] && die "VM $vmid is running - destroy failed"
	[ -z "$lock" ] || die "VM is locked ($lock)"
	# destroy_vm removes the VM's disks with its config.
	rm -rf "$D"/images/"$node"/*/vm-"$vmid"-* "$D"/images/"$node"/*/"$vmid"
	rm -f "$conf" "$ha" ;;
*)
	die "unknown command 'qm $cmd'" ;;
esac
`

const pveshScript = common + `printf '%s\n' "$*" >> "$D/log/pvesh.log"
[ "$1" = get ] || die "400 unknown command 'pvesh $1'"
if [ "$2" = /version ]; then
	v=$(cat "$D/version" 2>/dev/null || echo 8.4.1)
	printf '{"release":"%s","repoid":"c0ffee00","version":"%s"}\n' "${v%.*}" "$v"
	exit 0
fi
[ "$2" = /cluster/resources ] || die "no such path '$2'"
type=
shift 2
while [ $# -gt 0 ]; do
	case $1 in
	--type) type=$2; shift 2 ;;
	--output-format) shift 2 ;;
	*) die "400 unknown option $1" ;;
	esac
done
case $type in
""|vm|node|storage) ;;
*) die "400 Parameter verification failed. type: value '$type' does not have a value in the enumeration 'vm, storage, node, sdn'" ;;
esac
printf '['
sep=
for t in node storage; do
	[ -z "$type" ] || [ "$type" = $t ] || continue
	rows=$(cat "$D/cluster-$t.json")
	[ -n "$rows" ] || continue
	printf '%s%s' "$sep" "$rows"
	sep=,
done
[ -z "$type" ] || [ "$type" = vm ] || { printf ']\n'; exit 0; }
for f in "$D"/nodes/*/qemu-server/*.conf "$D"/nodes/*/lxc/*.conf; do
	[ -e "$f" ] || continue
	owner=${f#"$D"/nodes/}; owner=${owner%%/*}
	id=${f##*/}; id=${id%.conf}
	typ=qemu; case $f in */lxc/*) typ=lxc ;; esac
	tmpl=0; grep -q '^template: 1' "$f" && tmpl=1
	status=stopped; [ -e "$D/running/$id" ] && status=running
	name=$(sed -n 's/^name: //p' "$f")
	printf '%s{"id":"%s/%s","type":"%s","vmid":%s,"node":"%s","name":"%s","status":"%s","template":%s}' \
		"$sep" "$typ" "$id" "$typ" "$id" "$owner" "$name" "$status" "$tmpl"
	sep=,
done
printf ']\n'
`

const haManagerScript = common + `printf '%s\n' "$*" >> "$D/log/ha-manager.log"
[ "$1" = add ] || die "unknown command 'ha-manager $1'"
sid=$2; shift 2
state=started; group=
while [ $# -gt 0 ]; do
	case $1 in
	--state) state=$2 ;;
	--group) group=$2 ;;
	*) die "400 unknown option $1" ;;
	esac
	shift 2
done
case $sid in vm:*) ;; *) die "400 Parameter verification failed. sid: value does not look like a valid ha resource id" ;; esac
id=${sid#vm:}
v=$(cat "$D/version" 2>/dev/null || echo 8.4.1)
[ -n "$group" ] && [ "${v%%.*}" -ge 9 ] && die "invalid parameter 'group': ha groups have been migrated to rules"
set -- "$D"/nodes/*/qemu-server/"$id".conf
[ -e "$1" ] || die "resource '$sid' does not exist in cluster"
[ -e "$D/ha/$sid" ] && die "create resource failed: resource ID '$sid' already defined"
echo "$state $group" > "$D/ha/$sid"
`

// String describes the node, for test logs.
func (n *Node) String() string { return fmt.Sprintf("stand-in node %s at %s", n.Name, n.SSH.Addr) }
