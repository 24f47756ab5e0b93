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
// the flag list spliced in at "OPTIONS:"), how it defines its flags and
// runs (define, made by runs from the command's run function), and how
// to complete its flags' values.
type command struct {
	name     string
	summary  string
	help     string
	define   func(fs *pflag.FlagSet) runner
	complete map[string]completer // flag name → its values' completion
}

// runner runs a command once fs, the flag set define bound its options
// to, has parsed the command line.
type runner func(ctx context.Context, s *streams) error

// completer lists the values a flag may take, given the command's flags
// as parsed so far and the positional arguments before it.
type completer func(s *streams, fs *pflag.FlagSet, args []string, toComplete string) []string

// commands is every subcommand, in one list, as restic and gh register
// theirs: what the root command, the help, completion and the man pages
// are made from. Each runs through its options struct and its run
// function, which tests may also call directly.
var commands = []command{
	{name: "config", summary: "print a config stored in an archive", help: configHelp, define: runs(runConfig)},
	{name: "convert", summary: "convert between archives, qcow2 and raw images (like qemu-img convert)", help: convertHelp, define: runs(runConvert),
		complete: map[string]completer{"device": archiveDevices}},
	{name: "create", summary: "Proxmox-compatible form: vmatool create <file> [-c cfg]... [-d format=raw:<devname>=<path>]...", help: createHelp, define: runs(runCreate)},
	{name: "deploy", summary: "turn an image or archive into a VM or template on a Proxmox node", help: deployHelp, define: runs(runDeploy),
		complete: map[string]completer{"target": targetNames}},
	{name: "extract", summary: "Proxmox-compatible form: vmatool extract <file> [-v] [-d drive-list] [-r fifo] <targetdir>", help: extractHelp, define: runs(runExtract),
		complete: map[string]completer{"drives": archiveDevices}},
	{name: "info", summary: "describe an image or archive: format, sizes, backing chain, partitions", help: infoHelp, define: runs(runInfo)},
	{name: "list", summary: "list an archive's configs and devices (like Proxmox's vma list)", help: listHelp, define: runs(runList)},
	{name: "pack", summary: "pack raw or qcow2 disk images into a VMA archive", help: packHelp, define: runs(runPack)},
	{name: "unpack", summary: "write an archive's configs and disks into a directory", help: unpackHelp, define: runs(runUnpack),
		complete: map[string]completer{"devices": archiveDevices}},
	{name: "verify", summary: "check that an archive is complete and valid", help: verifyHelp, define: runs(runVerify)},
	{name: "version", summary: "print vmatool's version", help: versionHelp, define: runs(runVersion)},
}

// options is what each command's options struct does: addFlags defines
// the command's flags onto the struct's fields (defining them sets each
// field to its default), and setParsed (from cmdLine) takes what the
// command line holds besides flag values.
type options interface {
	addFlags(fs *pflag.FlagSet)
	setParsed(fs *pflag.FlagSet)
}

// cmdLine is what every options struct holds besides its flags' values:
// the positional arguments, and the flags the command line gave. A few
// flags mean something by being given, not only by their value: pack
// refuses --ctime -1 where its default -1 means "now", extract -d ""
// picks no disk where no -d picks all, and deploy puts the flags given
// over each target of a --targets file.
type cmdLine struct {
	args  []string
	given map[string]bool
}

func (c *cmdLine) setParsed(fs *pflag.FlagSet) {
	c.args = fs.Args()
	c.given = map[string]bool{}
	fs.Visit(func(f *pflag.Flag) { c.given[f.Name] = true })
}

// isGiven reports whether the command line gave the flag name.
func (c *cmdLine) isGiven(name string) bool { return c.given[name] }

// give marks flags as given, as the command line would: for a command
// run from code (convert runs pack) or from a test.
func (c *cmdLine) give(names ...string) {
	if c.given == nil {
		c.given = map[string]bool{}
	}
	for _, n := range names {
		c.given[n] = true
	}
}

// oneArg returns a command's single positional argument, or a usage
// error that says what it should have been.
func oneArg(args []string, what string) (string, error) {
	if len(args) != 1 {
		return "", usagef("want one %s, got %d arguments", what, len(args))
	}
	return args[0], nil
}

// runs makes a command's define from its run function: a fresh options
// struct for each command tree, its flags defined on fs, and run called
// with it once fs has parsed the command line.
func runs[O any, P interface {
	*O
	options
}](run func(context.Context, *streams, P) error) func(*pflag.FlagSet) runner {
	return func(fs *pflag.FlagSet) runner {
		o := P(new(O))
		o.addFlags(fs)
		return func(ctx context.Context, s *streams) error {
			o.setParsed(fs)
			return run(ctx, s, o)
		}
	}
}

// defaults is an options struct as a command line that gives no flag and
// no argument leaves it: every flag at its default. Code that runs a
// command directly starts from it.
func defaults[O any, P interface {
	*O
	options
}]() P {
	o := P(new(O))
	fs := pflag.NewFlagSet("", pflag.ContinueOnError)
	o.addFlags(fs)
	o.setParsed(fs)
	return o
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
	for _, c := range commands {
		root.AddCommand(newCommand(ctx, s, c))
	}
	root.AddCommand(newManCommand(root))
	// Made now rather than when Execute runs, so that the overview, the
	// man pages and completion, which all list root's commands, list them.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		switch c.Name() {
		case "help":
			c.Short, c.Long = helpSummary, helpHelp
		case "completion":
			setupCompletion(c)
		}
	}
	// cobra's commands (completion and its shells) report flag mistakes
	// as those of the list do.
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{flagError(c.Flags(), err).Error()}
	})
	// Help goes to the command's output, which is s.out but for the man
	// pages, made from it.
	root.SetHelpFunc(func(c *cobra.Command, _ []string) {
		if c == root {
			printUsage(c.OutOrStdout(), root)
			return
		}
		// The commands of the list set their own; these are cobra's
		// (help, completion and its shells).
		fmt.Fprint(c.OutOrStdout(), c.Long+exitStatusHelp)
	})
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
	run := c.define(fs)
	cc.RunE = func(*cobra.Command, []string) error {
		if err := progressConflict(fs); err != nil {
			return err
		}
		return run(ctx, s)
	}
	cc.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return usageError{flagError(fs, err).Error()}
	})
	cc.SetHelpFunc(func(cmd *cobra.Command, _ []string) {
		// Every help ends with its EXIT STATUS section, which the statuses
		// any command may end with complete.
		fmt.Fprint(cmd.OutOrStdout(), commandHelp(c.help, fs)+exitStatusHelp)
	})
	for name, complete := range c.complete {
		cc.RegisterFlagCompletionFunc(name, func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return complete(s, cmd.Flags(), args, toComplete), cobra.ShellCompDirectiveNoFileComp
		})
	}
	return cc
}

// commandHelp is a command's help with its flags listed under OPTIONS.
func commandHelp(help string, fs *pflag.FlagSet) string {
	return strings.Replace(help, "OPTIONS:\n", "OPTIONS:\n"+fs.FlagUsages(), 1)
}

const helpSummary = "show a command's help, or this list"

const helpHelp = `Usage: vmatool help [COMMAND]

Shows COMMAND's help, as "vmatool COMMAND --help" does; without COMMAND,
the list of commands, as "vmatool --help" does.

EXIT STATUS:
  0 ok, 2 no such command.
`

// shells are the shells completion writes scripts for: cobra's
// subcommands of completion.
var shells = []string{"bash", "fish", "powershell", "zsh"}

const completionHelp = `Usage: vmatool completion bash|zsh|fish|powershell [--no-descriptions]

Prints a script that teaches the shell to complete vmatool's commands and
flags, the disks of the archive named on the command line for -d (unpack,
convert, extract), and the names in the --targets file for deploy
--target. --no-descriptions leaves out the one-line descriptions of the
candidates.

To load it in the running shell, or for every new one:
  bash:        source <(vmatool completion bash)
               vmatool completion bash > /etc/bash_completion.d/vmatool
               (needs the bash-completion package)
  zsh:         source <(vmatool completion zsh)
               vmatool completion zsh > "${fpath[1]}/_vmatool"
               (needs "autoload -U compinit; compinit" in ~/.zshrc)
  fish:        vmatool completion fish | source
               vmatool completion fish > ~/.config/fish/completions/vmatool.fish
  PowerShell:  vmatool completion powershell | Out-String | Invoke-Expression
               (add that line to $PROFILE for every new shell)

EXAMPLES:
  vmatool completion bash > ~/.local/share/bash-completion/completions/vmatool

EXIT STATUS:
  0 ok, 2 usage error (no shell, or one vmatool writes no script for).
`

// setupCompletion gives cobra's completion command vmatool's summary and
// help (also for its shells' subcommands), and makes a missing or unknown
// shell a usage error: cobra would show the help and exit 0.
func setupCompletion(c *cobra.Command) {
	c.Short = "print a shell completion script: bash, zsh, fish or powershell"
	c.Long = completionHelp
	for _, sub := range c.Commands() {
		sub.Long = completionHelp
	}
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(_ *cobra.Command, args []string) error {
		if len(args) == 0 {
			return usagef("want a shell: %s", strings.Join(shells, ", "))
		}
		return usagef("unknown shell %s%s (want one of %s)", args[0], didYouMean(args[0], shells, ""), strings.Join(shells, ", "))
	}
}

// listed are the commands of root that a person runs, sorted by name:
// those the overview, the man pages and completion list, and that
// suggestions name. The hidden ones (man, cobra's __complete) are not.
func listed(root *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	for _, c := range root.Commands() { // sorted by cobra
		if !c.Hidden {
			out = append(out, c)
		}
	}
	return out
}

// isSubcommand reports whether name is a command of root's tree: the
// listed ones, the hidden ones (man), and cobra's completion helpers,
// which Execute adds.
func isSubcommand(root *cobra.Command, name string) bool {
	switch name {
	case cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd:
		return true
	}
	for _, c := range root.Commands() {
		if c.Name() == name {
			return true
		}
	}
	return false
}

// archiveDevices completes a device flag with the disks of the archive
// named first on the command line (vmstate is not a disk to pick).
func archiveDevices(s *streams, _ *pflag.FlagSet, args []string, toComplete string) []string {
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
// given before it (cobra has parsed the flags before the one completed).
func targetNames(_ *streams, fs *pflag.FlagSet, _ []string, toComplete string) []string {
	path, _ := fs.GetString("targets")
	if path == "" || path == "-" {
		return nil // standard input is the shell's, not completion's, to read
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

// runCobra runs args (a command known to isSubcommand first) through
// root and returns the command that ran, as messages name it ("pack",
// "completion bash"), and its error.
func runCobra(root *cobra.Command, args []string) (string, error) {
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	name := args[0]
	if cmd != nil && cmd != root {
		name = strings.TrimPrefix(cmd.CommandPath(), root.Name()+" ")
	}
	var ue usageError
	if err != nil && !errors.As(err, &ue) && strings.HasPrefix(name, "completion") {
		// cobra's own refusals: a shell given an argument, an unknown flag.
		err = usageError{err.Error()}
	}
	return name, err
}
