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
//     otherwise the config is created locked, and a failed restore leaves
//     it behind, empty when it failed before the archive's header was read
//     and "memory: 128" after. "-" reads an uncompressed VMA from standard
//     input; a file's base name must be a vzdump name. It exits non-zero
//     when the restore fails. What it read is kept (Received), as sent.
//   - qm start exits non-zero when its task fails; qm template exits 0
//     even when its task fails, leaving the config without "template: 1"
//     (qemu-server src/PVE/CLI/qm.pm), and refuses a running VM up front;
//     qm destroy refuses a locked or running VM; qm config prints the
//     config; qm set --name NAME renames, refusing a locked VM; a missing
//     config is "Configuration file 'nodes/N/qemu-server/ID.conf' does not
//     exist".
//   - pvesh get /cluster/resources --type vm --output-format json prints
//     the bare array of VMs and containers of every node (pve-manager
//     PVE/API2/Cluster.pm), vmid as a number.
//   - The node name is uname -n up to the first dot.
package nodetest

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

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
	srv := sshtest.Start(t)
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	name, _, _ := strings.Cut(host, ".")
	n := &Node{SSH: srv, Name: name, Dir: t.TempDir()}
	n.Dump = filepath.Join(n.Dir, "dump")
	for _, d := range []string{"dump", "log", "received", "running", "fail", "nodes/" + name + "/qemu-server", "nodes/" + name + "/lxc"} {
		if err := os.MkdirAll(filepath.Join(n.Dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	q := shellQuote(n.Dir)
	srv.AddCommand(t, "qmrestore", "D="+q+"\n"+qmrestoreScript)
	srv.AddCommand(t, "qm", "D="+q+"\n"+qmScript)
	srv.AddCommand(t, "pvesh", "D="+q+"\n"+pveshScript)
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

// FailRestore makes the next restore fail after the archive's header was
// read, printing msg as qmrestore's error.
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

// SetRunning marks VM vmid as running.
func (n *Node) SetRunning(t testing.TB, vmid int) { n.writeState(t, "running/"+strconv.Itoa(vmid), "") }

// CountOnly makes qmrestore count the bytes it reads from standard input
// (ReceivedBytes) instead of keeping them, for benchmarks of large images.
func (n *Node) CountOnly(t testing.TB) { n.writeState(t, "countonly", "") }

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

const qmrestoreScript = common + `printf '%s\n' "$*" >> "$D/log/qmrestore.log"
[ $# -ge 2 ] || die "400 not enough arguments"
archive=$1; vmid=$2; shift 2
force=0; storage=local-lvm
while [ $# -gt 0 ]; do
	case $1 in
	--force) force=$2 ;;
	--storage) storage=$2 ;;
	--unique|--start|--pool|--bwlimit) ;;
	*) die "400 unknown option $1" ;;
	esac
	shift 2
done
if [ "$archive" != - ]; then
	[ -f "$archive" ] || die "can't find file '$archive'"
	case ${archive##*/} in
	vzdump-qemu-*.vma|vzdump-qemu-*.vma.zst|vzdump-qemu-*.vma.gz|vzdump-qemu-*.vma.lzo|vzdump-qemu-*.vma.bz2) ;;
	*) die "unable to parse archive name '$archive'" ;;
	esac
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
unlock() { sed -i '/^lock:/d' "$conf"; }
if [ -e "$D/running/$vmid" ]; then unlock; die "unable to restore VM $vmid - vm is running"; fi
head=$D/received/$vmid.head
if [ "$archive" = - ]; then
	if [ -e "$D/countonly" ]; then
		dd bs=4 count=1 iflag=fullblock of="$head" 2>/dev/null
		n=$(wc -c); echo $(( n + $(wc -c < "$head") )) > "$D/received/$vmid.bytes"
	else
		cat > "$D/received/restored-$vmid.vma"; head -c 4 "$D/received/restored-$vmid.vma" > "$head"
	fi
else
	cp -- "$archive" "$D/received/restored-$vmid.vma"
	case $archive in
	*.zst) dec="zstd -dc" ;; *.gz) dec="gzip -dc" ;; *.lzo) dec="lzop -dc" ;; *.bz2) dec="bzip2 -dc" ;; *) dec=cat ;;
	esac
	$dec < "$archive" 2>/dev/null | head -c 4 > "$head"
fi
if [ "$(head -c 3 "$head")" != VMA ]; then
	# Failed before the header was read: the config stays, empty.
	: > "$conf"
	die "unable to restore VM $vmid - command 'vma extract -v -r /var/tmp/vzdumptmp.fifo - /var/tmp/vzdumptmp' failed: got wrong magic"
fi
if [ -e "$D/fail/restore" ]; then
	msg=$(cat "$D/fail/restore"); rm -f "$D/fail/restore"
	echo "memory: 128" > "$conf"
	die "$msg"
fi
cat > "$conf" <<EOC
boot: order=scsi0
memory: 2048
name: restored-$vmid
scsi0: $storage:vm-$vmid-disk-0,size=2G
scsihw: virtio-scsi-single
EOC
`

const qmScript = common + `cmd=$1; vmid=$2
printf '%s\n' "$*" >> "$D/log/qm.log"
conf=$(confpath "$vmid")
[ -e "$conf" ] || { echo "Configuration file 'nodes/$node/qemu-server/$vmid.conf' does not exist" >&2; exit 2; }
lock=$(sed -n 's/^lock: //p' "$conf")
case $cmd in
config)
	grep -v '^$' "$conf" | sort ;;
start)
	[ -z "$lock" ] || die "VM is locked ($lock)"
	grep -q '^template: 1' "$conf" && die "you can't start a vm if it's a template"
	[ -e "$D/running/$vmid" ] && die "VM $vmid already running"
	if [ -e "$D/fail/start-$vmid" ]; then die "$(cat "$D/fail/start-$vmid")"; fi
	: > "$D/running/$vmid" ;;
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
	[ $# -eq 4 ] && [ "$3" = --name ] || die "400 unsupported: qm $*"
	sed -i '/^name:/d' "$conf"; printf 'name: %s\n' "$4" >> "$conf" ;;
destroy)
	[ -e "$D/running/$vmid" ] && die "VM $vmid is running - destroy failed"
	[ -z "$lock" ] || die "VM is locked ($lock)"
	rm -f "$conf" ;;
*)
	die "unknown command 'qm $cmd'" ;;
esac
`

const pveshScript = common + `printf '%s\n' "$*" >> "$D/log/pvesh.log"
[ "$1 $2" = "get /cluster/resources" ] || die "no such path '$2'"
printf '['
sep=
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

// String describes the node, for test logs.
func (n *Node) String() string { return fmt.Sprintf("stand-in node %s at %s", n.Name, n.SSH.Addr) }
