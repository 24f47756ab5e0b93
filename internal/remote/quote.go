package remote

import "strings"

// ShellQuote joins args into one POSIX shell command line in which every
// argument reaches the program literally, whatever it contains: the
// remote sshd hands the line to the login shell, so an unquoted "$(...)"
// or ";" in a file name would run as code there.
//
// Arguments made only of characters no shell treats specially are left
// bare for readability; all others are single-quoted, and a single quote
// inside one ends the quoting, is escaped and reopens it:
//
//	it's  ->  'it'\''s'
//
// The result suits sh, dash, bash, ksh and zsh (not csh or fish). Quoting
// does not stop a program from reading an argument that starts with "-" as
// an option: pass "--" before such paths.
func ShellQuote(args ...string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		quoteTo(&b, a)
	}
	return b.String()
}

func quoteTo(b *strings.Builder, s string) {
	if s != "" && isBare(s) {
		b.WriteString(s)
		return
	}
	b.WriteByte('\'')
	b.WriteString(strings.ReplaceAll(s, "'", `'\''`))
	b.WriteByte('\'')
}

// isBare reports whether s can stand unquoted. "=" is excluded because a
// leading NAME=value word would be read as an assignment, "~" because of
// tilde expansion.
func isBare(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("_-./:,+@%", c) >= 0:
		default:
			return false
		}
	}
	return true
}
