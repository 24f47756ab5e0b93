// Package remote is the SSH transport vmatool uses to reach a Proxmox VE
// node: it dials with host-key checking against known_hosts, runs commands
// whose arguments are shell-quoted, and streams a file up so that it
// appears under its final name only when it arrived complete.
//
// It reaches hosts the way OpenSSH users set them up: ReadSSHConfig reads
// ~/.ssh/config (or the file the user names) with its Include files, and
// SSHConfig.Resolve turns a Host alias into a Config, with HostName, Port,
// User, IdentityFile, IdentitiesOnly, UserKnownHostsFile and ProxyJump
// applied; Dial then tunnels through the jump hosts, checking the host
// key of every hop. Host keys are checked as strictly as with no config:
// StrictHostKeyChecking is not honoured, and only the caller can turn the
// check off, for the final host alone.
//
// The package knows nothing about archive formats; callers hand it an
// io.Reader. It never prints, exits or reads environment variables: the
// caller passes in everything, including the ssh-agent socket path, the
// home directory and the local user name.
//
// The remote side needs only a POSIX sh and coreutils (head, wc, mv, rm,
// uname, kill), which every Proxmox VE node has, and a login shell that
// parses POSIX quoting (sh, bash, dash, zsh; not csh or fish), since sshd
// hands the command line to it.
package remote
