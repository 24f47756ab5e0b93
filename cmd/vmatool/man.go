package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// newManCommand is the hidden "vmatool man DIR": a man page per command,
// in section 1, from the same definitions as the help. It writes roff
// itself: cobra/doc would add go-md2man and a Markdown parser to turn
// help text that is already laid out as plain text into roff.
func newManCommand(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "write vmatool's man pages into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return writeManPages(root, args[0])
		},
	}
}

// writeManPages writes vmatool.1, and vmatool-COMMAND.1 for each command
// the overview lists, into dir: each page is the command's help.
func writeManPages(root *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var b bytes.Buffer
	manHeader(&b, "vmatool", root.Short)
	b.WriteString(".SH SYNOPSIS\n.B vmatool\n\\fICOMMAND\\fR [\\fIOPTIONS\\fR] \\fIARGS\\fR\n.SH COMMANDS\n")
	for _, c := range listed(root) {
		fmt.Fprintf(&b, ".TP\n.BR vmatool-%s (1)\n%s\n", c.Name(), roffEscape(c.Short))
	}
	b.WriteString(".SH EXIT STATUS\n.nf\n" + roffEscape(overviewExitStatus+exitStatusHelp) + ".fi\n")
	if err := os.WriteFile(filepath.Join(dir, "vmatool.1"), b.Bytes(), 0o644); err != nil {
		return err
	}
	out := root.OutOrStdout()
	defer root.SetOut(out)
	for _, c := range listed(root) {
		var help bytes.Buffer
		root.SetOut(&help)
		if err := c.Help(); err != nil {
			return err
		}
		b.Reset()
		manHeader(&b, "vmatool-"+c.Name(), c.Short)
		// The help is laid out for a terminal already: keep its lines,
		// and make its upper-case headings (and Usage) sections.
		for _, line := range strings.Split(strings.TrimRight(help.String(), "\n"), "\n") {
			switch {
			case strings.HasPrefix(line, "Usage: "):
				b.WriteString(".SH SYNOPSIS\n.nf\n" + roffEscape(strings.TrimPrefix(line, "Usage: ")) + "\n.fi\n.SH DESCRIPTION\n.nf\n")
			case isHeading(line):
				b.WriteString(".fi\n.SH " + strings.TrimSuffix(line, ":") + "\n.nf\n")
			default:
				b.WriteString(roffEscape(line) + "\n")
			}
		}
		b.WriteString(".fi\n.SH SEE ALSO\n.BR vmatool (1)\n")
		if err := os.WriteFile(filepath.Join(dir, "vmatool-"+c.Name()+".1"), b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func manHeader(b *bytes.Buffer, name, summary string) {
	fmt.Fprintf(b, ".TH %s 1 \"\" \"vmatool %s\" \"vmatool manual\"\n.SH NAME\n%s \\- %s\n", strings.ToUpper(name), version(), name, roffEscape(summary))
}

// isHeading is a help line such as "EXAMPLES:" or "EXIT STATUS:".
func isHeading(line string) bool {
	return strings.HasSuffix(line, ":") && line == strings.ToUpper(line) && strings.TrimSpace(line) == line && len(line) > 1
}

// roffEscape keeps backslashes, and lines starting with a dot or a quote,
// from being read as roff requests.
func roffEscape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			lines[i] = `\&` + l
		}
	}
	return strings.Join(lines, "\n")
}
