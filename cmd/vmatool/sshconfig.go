package main

import (
	"os/user"
	"path/filepath"

	"github.com/vmatool/vmatool/internal/remote"
)

// systemSSHConfig is OpenSSH's system-wide client config; tests point it
// elsewhere.
var systemSSHConfig = "/etc/ssh/ssh_config"

// readSSHConfig reads the OpenSSH client config as ssh would: the file the
// user named (which must exist, as with ssh -F), else ~/.ssh/config and
// the system file, either of which may be missing. The login name on a
// node defaults to root, as a Proxmox node wants; jump hosts default to
// the local user, as with ssh.
func readSSHConfig(getenv func(string) string, named string) (*remote.SSHConfig, error) {
	home := homeDir(getenv)
	local := "root"
	if u, err := user.Current(); err == nil {
		local = u.Username
	}
	opts := remote.SSHConfigOptions{
		UserFile: filepath.Join(home, ".ssh", "config"), SystemFile: systemSSHConfig, MissingOK: true,
		LocalUser: local, Home: home, DefaultUser: "root",
	}
	if named != "" {
		opts.UserFile, opts.SystemFile, opts.MissingOK = named, "", false
	}
	return remote.ReadSSHConfig(opts)
}
