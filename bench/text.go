package main

import (
	"math/rand/v2"
	"strconv"
)

// textSource makes the text half of a real system disk: journal lines,
// Nix store paths and NixOS option lines. Words come from a fixed vocabulary
// and numbers stay in small ranges, so zstd -3 shrinks it about 3-5x, as it
// does logs and configs; the store hashes keep it from compressing like a
// repeated pattern would.
type textSource struct {
	rng  *rand.Rand
	secs int64 // journal clock, advanced a little per line
	line []byte
}

func newTextSource(seed uint64) *textSource {
	return &textSource{rng: rand.New(rand.NewPCG(seed, 0x7465787473726300)), secs: 1700000000}
}

// fill fills p with whole lines, cutting the last one at the end of p.
func (t *textSource) fill(p []byte) {
	for n := 0; n < len(p); {
		t.line = t.nextLine(t.line[:0])
		n += copy(p[n:], t.line)
	}
}

func (t *textSource) pick(words []string) string { return words[t.rng.IntN(len(words))] }

func (t *textSource) nextLine(b []byte) []byte {
	switch k := t.rng.IntN(20); {
	case k < 13:
		return t.journalLine(b)
	case k < 17:
		return t.storePathLine(b)
	default:
		return t.optionLine(b)
	}
}

// journalLine: "Nov 14 22:13:20 nixos systemd[1]: Started the user session 42."
func (t *textSource) journalLine(b []byte) []byte {
	t.secs += int64(t.rng.IntN(3))
	s := t.secs % 86400
	b = append(b, "Nov "...)
	b = appendPadded(b, 14+t.secs/86400%16, 2)
	b = append(b, ' ')
	b = appendPadded(b, s/3600, 2)
	b = append(b, ':')
	b = appendPadded(b, s/60%60, 2)
	b = append(b, ':')
	b = appendPadded(b, s%60, 2)
	b = append(b, " nixos "...)
	b = append(b, t.pick(units)...)
	b = append(b, '[')
	b = strconv.AppendInt(b, int64(pids[t.rng.IntN(len(pids))]), 10)
	b = append(b, "]: "...)
	b = append(b, t.pick(verbs)...)
	for range 3 + t.rng.IntN(7) {
		b = append(b, ' ')
		b = append(b, t.pick(words)...)
	}
	if t.rng.IntN(3) == 0 {
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(t.rng.IntN(1000)), 10)
	}
	return append(b, ".\n"...)
}

// storePathLine: "/nix/store/<hash>-systemd-254.6/lib/systemd/libsystemd-shared.so"
func (t *textSource) storePathLine(b []byte) []byte {
	b = append(b, "/nix/store/"...)
	for range 32 {
		b = append(b, nixBase32[t.rng.IntN(len(nixBase32))])
	}
	b = append(b, '-')
	b = append(b, t.pick(packages)...)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(1+t.rng.IntN(9)), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(t.rng.IntN(30)), 10)
	b = append(b, '/')
	b = append(b, t.pick(dirs)...)
	b = append(b, '/')
	b = append(b, t.pick(packages)...)
	return append(b, '\n')
}

// optionLine: "  services.openssh.enable = true;"
func (t *textSource) optionLine(b []byte) []byte {
	b = append(b, "  "...)
	b = append(b, t.pick(optionRoots)...)
	b = append(b, '.')
	b = append(b, t.pick(packages)...)
	b = append(b, '.')
	b = append(b, t.pick(optionLeaves)...)
	b = append(b, " = "...)
	b = append(b, t.pick(optionValues)...)
	return append(b, ";\n"...)
}

func appendPadded(b []byte, v int64, width int) []byte {
	start := len(b)
	b = strconv.AppendInt(b, v, 10)
	for len(b)-start < width {
		b = append(b, 0)
		copy(b[start+1:], b[start:])
		b[start] = '0'
	}
	return b
}

const nixBase32 = "0123456789abcdfghijklmnpqrsvwxyz"

var (
	pids  = []int{1, 412, 587, 603, 711, 1024, 1187, 2291, 3310, 4096, 5120, 8812}
	units = []string{"systemd", "kernel", "sshd", "nix-daemon", "dhcpcd", "systemd-logind",
		"systemd-journald", "systemd-networkd", "nscd", "cron", "dbus-daemon", "polkitd",
		"qemu-ga", "chronyd", "nginx", "postgres"}
	verbs = []string{"Started", "Stopped", "Starting", "Reached", "Finished", "Accepted",
		"Failed", "Listening on", "Mounted", "Created", "Received", "Reloading", "Deactivated"}
	words = []string{"the", "a", "user", "session", "of", "for", "from", "on", "to", "with",
		"service", "unit", "target", "socket", "slice", "network", "interface", "address",
		"lease", "publickey", "port", "root", "alice", "bob", "nixos", "disk", "partition",
		"filesystem", "journal", "rotation", "timer", "daily", "cleanup", "temporary",
		"directories", "garbage", "collector", "store", "paths", "deleted", "freed", "bytes",
		"connection", "closed", "by", "authenticating", "successfully", "activated",
		"configuration", "generation", "switch", "boot", "loader", "entry", "kernel", "module",
		"loaded", "device", "virtio", "scsi", "block", "eth0", "ens18", "link", "up", "down",
		"carrier", "gained", "lost", "DHCPv4", "DHCPv6", "route", "default", "gateway",
		"clock", "synchronized", "server", "time", "offset", "request", "GET", "POST", "200",
		"404", "checkpoint", "complete", "wrote", "buffers", "database", "system", "ready"}
	packages = []string{"systemd", "glibc", "bash", "coreutils", "openssh", "nix", "linux",
		"util-linux", "gcc-lib", "zlib", "openssl", "python3", "perl", "curl", "git", "nginx",
		"postgresql", "dbus", "shadow", "iproute2", "kmod", "e2fsprogs", "xz", "zstd",
		"ncurses", "readline", "gnugrep", "gnused", "findutils", "tzdata", "cacert", "sqlite"}
	dirs         = []string{"bin", "lib", "libexec", "share/man/man1", "share/doc", "etc", "lib/systemd", "include", "share/locale"}
	optionRoots  = []string{"services", "programs", "boot.loader", "networking", "systemd.services", "security", "hardware", "virtualisation"}
	optionLeaves = []string{"enable", "package", "extraConfig", "settings", "port", "openFirewall", "wantedBy", "after", "user", "group"}
	optionValues = []string{"true", "false", "pkgs.hello", "[ \"multi-user.target\" ]", "22", "8080", "\"root\"", "null", "{ }", "lib.mkDefault true", "\"/var/lib/data\""}
)
