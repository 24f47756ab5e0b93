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

// configOptions are config's flags and argument (ARCHIVE).
type configOptions struct {
	cmdLine
	name   string
	window maxWindow
}

func (o *configOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&o.name, "config", "c", pveconf.ConfigName, "name of the config to print")
	addMaxWindowFlag(fs, &o.window)
}

// runConfig writes the config's bytes to standard output.
func runConfig(_ context.Context, s *streams, o *configOptions) error {
	a, err := openArchiveArg(s, o.args, o.window)
	if err != nil {
		return err
	}
	defer a.Close()
	data, ok := a.reader.Header().Config(o.name)
	if !ok {
		return fmt.Errorf("%s: unable to find configuration data '%s'", a.name, o.name)
	}
	_, err = s.out.Write(data)
	return err
}
