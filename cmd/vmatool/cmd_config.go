package main

import (
	"context"
	"fmt"

	"github.com/vmatool/vmatool/internal/pveconf"
)

func init() {
	commands = append(commands, command{name: "config", summary: "print a config stored in an archive", run: runConfig})
}

const configHelp = `Usage: vmatool config [-c NAME] ARCHIVE

Writes the raw bytes of a config stored in the archive to standard output,
like Proxmox's "vma config". Reads only the header.

OPTIONS:

EXAMPLES:
  vmatool config backup.vma.zst
  vmatool config -c qemu-server.fw backup.vma > 100.fw

EXIT STATUS:
  0 ok, 1 no such config or a malformed archive, 2 usage error.
`

func runConfig(ctx context.Context, s *streams, args []string) error {
	fs := newFlags("config")
	name := fs.StringP("config", "c", pveconf.ConfigName, "name of the config to print")
	window := addMaxWindowFlag(fs)
	if err := parseFlags(s, fs, configHelp, args); err != nil {
		return err
	}
	path, err := oneArg(fs, "ARCHIVE")
	if err != nil {
		return err
	}
	a, err := openArchive(s, path, true, "", window.option())
	if err != nil {
		return err
	}
	defer a.Close()
	data, ok := a.reader.Header().Config(*name)
	if !ok {
		return fmt.Errorf("%s: unable to find configuration data '%s'", a.name, *name)
	}
	_, err = s.out.Write(data)
	return err
}
