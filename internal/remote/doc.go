// Package remote is the SSH transport vmatool uses to reach a Proxmox VE
// node: it dials with host-key checking against known_hosts, runs commands
// whose arguments are shell-quoted, and streams a file up so that it
// appears under its final name only when it arrived complete.
//
// The package knows nothing about archive formats; callers hand it an
// io.Reader. It never prints, exits or reads environment variables: the
// caller passes in everything, including the ssh-agent socket path.
//
// The remote side needs only a POSIX sh and coreutils (head, wc, mv, rm,
// uname, kill), which every Proxmox VE node has, and a login shell that
// parses POSIX quoting (sh, bash, dash, zsh; not csh or fish), since sshd
// hands the command line to it.
package remote
