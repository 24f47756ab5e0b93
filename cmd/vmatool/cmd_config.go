package main

import (
	"context"
	"fmt"
	"github.com/spf13/pflag"

	"github.com/vmatool/vmatool/internal/pveconf"
)

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

// configFlags defines config's flags on fs and returns what runs it once
// they are parsed.
func configFlags(fs *pflag.FlagSet, s *streams) runner {
	name := fs.StringP("config", "c", pveconf.ConfigName, "name of the config to print")
	window := addMaxWindowFlag(fs)
	return func(ctx context.Context) error {
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
}
