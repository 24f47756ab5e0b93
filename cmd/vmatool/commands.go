package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/vmatool/vmatool/internal/deploy"
)

// command is one subcommand: its summary, its help (the Long text, with
// the flag list spliced in at "OPTIONS:"), the function that defines its
// flags and returns what runs it, and how to complete its flags' values.
type command struct {
	name     string
	summary  string
	help     string
	flags    func(fs *pflag.FlagSet, s *streams) runner
	complete map[string]completer // flag name → its values' completion
}

// runner runs a command once its flags are parsed; its arguments are
// those of the flag set the command was defined on.
type runner func(ctx context.Context) error

// completer lists the values a flag may take, given the positional
// arguments before it.
type completer func(s *streams, args []string, toComplete string) []string

// commands is every subcommand, in one list, as restic and gh register
// theirs: what the root command, the help, completion and the man pages
// are made from.
var commands = []command{
	{name: "config", summary: "print a config stored in an archive", help: configHelp, flags: configFlags},
	{name: "convert", summary: "convert between archives, qcow2 and raw images (like qemu-img convert)", help: convertHelp, flags: convertFlags,
		complete: map[string]completer{"device": archiveDevices}},
	{name: "create", summary: "Proxmox-compatible form: vmatool create <file> [-c cfg]... [-d format=raw:<devname>=<path>]...", help: createHelp, flags: createFlags},
	{name: "deploy", summary: "turn an image or archive into a VM or template on a Proxmox node", help: deployHelp, flags: deployFlags,
		complete: map[string]completer{"target": targetNames}},
	{name: "extract", summary: "Proxmox-compatible form: vmatool extract <file> [-v] [-d drive-list] [-r fifo] <targetdir>", help: extractHelp, flags: extractFlags,
		complete: map[string]completer{"drives": archiveDevices}},
	{name: "info", summary: "describe an image or archive: format, sizes, backing chain, partitions", help: infoHelp, flags: infoFlags},
	{name: "list", summary: "list an archive's configs and devices (like Proxmox's vma list)", help: listHelp, flags: listFlags},
	{name: "pack", summary: "pack raw or qcow2 disk images into a VMA archive", help: packHelp, flags: packFlags},
	{name: "unpack", summary: "write an archive's configs and disks into a directory", help: unpackHelp, flags: unpackFlags,
		complete: map[string]completer{"devices": archiveDevices}},
	{name: "verify", summary: "check that an archive is complete and valid", help: verifyHelp, flags: verifyFlags},
}

// deployFlags defines deploy's flags, for its help, completion and man
// page, and has cobra check them. deploy itself parses its command line
// again for each target of a --targets file (the file's values are the
// defaults the command line overrides), so it runs on the raw arguments.
func deployFlags(fs *pflag.FlagSet, s *streams) runner {
	t := deploy.DefaultTarget()
	bindTargetFlags(fs, &t)
	var g deployGlobal
	bindDeployGlobal(fs, &g)
	addProgressFlag(fs, s)
	return func(ctx context.Context) error { return runDeploy(ctx, s, s.argv) }
}

// newRoot builds the command tree for one run with streams s. The root
// prints nothing of its own: errors come back from Execute and exitCode
// turns them into statuses.
func newRoot(ctx context.Context, s *streams) *cobra.Command {
	root := &cobra.Command{
		Use:           "vmatool",
		Short:         "Proxmox VE backup archives (VMA) without Proxmox",
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetIn(s.in)
	root.SetOut(s.out)
	root.SetErr(s.err)
	root.SetHelpFunc(func(*cobra.Command, []string) { printUsage(s.out) })
	for _, c := range commands {
		root.AddCommand(newCommand(ctx, s, c))
	}
	root.AddCommand(newManCommand(root))
	return root
}

func newCommand(ctx context.Context, s *streams, c command) *cobra.Command {
	cc := &cobra.Command{
		Use:                   c.name,
		Short:                 c.summary,
		Long:                  c.help,
		Args:                  cobra.ArbitraryArgs,
		DisableFlagsInUseLine: true,
		SilenceErrors:         true,
		SilenceUsage:          true,
	}
	fs := cc.Flags()
	fs.SortFlags = false
	fs.BoolP("help", "h", false, "show this help")
	run := c.flags(fs, s)
	cc.RunE = func(*cobra.Command, []string) error {
		if err := progressConflict(fs); err != nil {
			return err
		}
		return run(ctx)
	}
	cc.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return usageError{flagError(fs, err).Error()}
	})
	cc.SetHelpFunc(func(*cobra.Command, []string) {
		// Every help ends with its EXIT STATUS section, which the statuses
		// any command may end with complete.
		fmt.Fprint(s.out, commandHelp(c.help, fs)+exitStatusHelp)
	})
	for name, complete := range c.complete {
		cc.RegisterFlagCompletionFunc(name, func(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return complete(s, args, toComplete), cobra.ShellCompDirectiveNoFileComp
		})
	}
	return cc
}

// commandHelp is a command's help with its flags listed under OPTIONS.
func commandHelp(help string, fs *pflag.FlagSet) string {
	return strings.Replace(help, "OPTIONS:\n", "OPTIONS:\n"+fs.FlagUsages(), 1)
}

// isSubcommand reports whether name is a command the cobra tree runs:
// the list above, completion (and its hidden helpers) and man.
func isSubcommand(name string) bool {
	switch name {
	case "completion", cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd, "man":
		return true
	}
	for _, c := range commands {
		if c.name == name {
			return true
		}
	}
	return false
}

// archiveDevices completes a device flag with the disks of the archive
// named first on the command line (vmstate is not a disk to pick).
func archiveDevices(s *streams, args []string, toComplete string) []string {
	if len(args) == 0 || args[0] == "-" {
		return nil
	}
	quiet := *s
	quiet.err, quiet.errisTTY, quiet.progress = io.Discard, false, false
	a, err := openArchive(&quiet, args[0], true, "")
	if err != nil {
		return nil
	}
	defer a.Close()
	var names []string
	for _, d := range a.reader.Header().Devices {
		if !d.IsVMState() && strings.HasPrefix(d.Name, toComplete) {
			names = append(names, d.Name)
		}
	}
	return names
}

// targetNames completes --target with the names in the --targets file
// given before it.
func targetNames(s *streams, _ []string, toComplete string) []string {
	path := flagValue(s.argv, "targets")
	if path == "" {
		return nil
	}
	all, err := loadTargets(path, func(*deploy.Target) error { return nil })
	if err != nil {
		return nil
	}
	var names []string
	for _, t := range all {
		if strings.HasPrefix(t.Name, toComplete) {
			names = append(names, t.Name)
		}
	}
	return names
}

// flagValue finds --name VALUE or --name=VALUE in args (the last wins, as
// when parsing).
func flagValue(args []string, name string) string {
	v := ""
	for i, a := range args {
		switch {
		case a == "--":
			return v
		case a == "--"+name && i+1 < len(args):
			v = args[i+1]
		case strings.HasPrefix(a, "--"+name+"="):
			v = strings.TrimPrefix(a, "--"+name+"=")
		}
	}
	return v
}

// runCobra runs args (a command known to isSubcommand first) through the
// command tree and returns the name of the command that ran and its error.
func runCobra(ctx context.Context, s *streams, args []string) (string, error) {
	s.argv = args[1:]
	root := newRoot(ctx, s)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	name := args[0]
	if cmd != nil && cmd != root {
		name = cmd.Name()
	}
	var ue usageError
	if err != nil && !errors.As(err, &ue) && cmd != nil && cmd.Name() == "completion" {
		err = usageError{err.Error()}
	}
	return name, err
}
