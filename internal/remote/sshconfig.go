package remote

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	sshconfig "github.com/kevinburke/ssh_config"
)

// SSHConfigOptions says which OpenSSH client configuration files
// ReadSSHConfig reads, and supplies what OpenSSH would take from the
// environment and the password database, which this package does not read.
type SSHConfigOptions struct {
	// UserFile is ~/.ssh/config, or the file the user named (ssh -F).
	// Relative Include paths in it, and in the files it includes, are
	// looked up in Home/.ssh.
	UserFile string
	// SystemFile is /etc/ssh/ssh_config, consulted after UserFile.
	// Relative Include paths in it are looked up in its directory. Leave
	// it empty when the user named a file, as ssh -F reads no other.
	SystemFile string
	// MissingOK reads a missing UserFile or SystemFile as empty, as
	// OpenSSH treats its default files. A file the user named should be an
	// error when missing.
	MissingOK bool

	// LocalUser is the local login name: the %u token, and the login name
	// on a jump host for which the file names none.
	LocalUser string
	// Home is the local user's home directory, absolute: ~ and %d, the
	// Include directory, and where the default key and known_hosts files
	// are.
	Home string
	// DefaultUser is the login name on the target host when neither
	// Config.User nor the file names one; empty means LocalUser, as for
	// ssh.
	DefaultUser string
}

// SSHConfig is the OpenSSH client configuration read by ReadSSHConfig,
// with every file its Include lines name. It is immutable once read and
// safe for concurrent use; Resolve applies it to a Config.
//
// The files are parsed by github.com/kevinburke/ssh_config, but looked up
// here, the way ssh looks them up: files and lines in order, the first
// value of a keyword wins (IdentityFile accumulates), Host patterns with
// * and ? and !negation, "Match all" and "Match host LIST", and Include
// (globs, ~, nested, conditional inside a Host block). The library would
// follow Include itself, finding the home directory on its own; this
// package must take it from the caller.
type SSHConfig struct {
	opts  SSHConfigOptions
	files []*configFile // UserFile, then SystemFile
}

// configFile is one parsed file and the files its Include lines brought
// in, in the order of their names, as glob(3) sorts them for OpenSSH.
type configFile struct {
	name     string
	cfg      *sshconfig.Config
	includes map[*sshconfig.KV][]*configFile
}

// maxIncludeDepth is OpenSSH's READCONF_MAX_DEPTH: deeper nesting is a
// file that includes itself.
const maxIncludeDepth = 16

// includeKeyword stands in for Include in the text handed to the parser,
// so the parser keeps the line as a plain keyword and reads no file.
const includeKeyword = "vmatool-include"

// ReadSSHConfig reads opts.UserFile, then opts.SystemFile, and the files
// they include. Errors name the file and line.
func ReadSSHConfig(opts SSHConfigOptions) (*SSHConfig, error) {
	switch {
	case !filepath.IsAbs(opts.Home):
		return nil, fmt.Errorf("remote: SSHConfigOptions.Home %q is not an absolute path", opts.Home)
	case opts.LocalUser == "":
		return nil, errors.New("remote: SSHConfigOptions.LocalUser is empty")
	}
	c := &SSHConfig{opts: opts}
	for _, top := range []struct{ name, includeDir string }{
		{opts.UserFile, filepath.Join(opts.Home, ".ssh")},
		{opts.SystemFile, filepath.Dir(opts.SystemFile)},
	} {
		if top.name == "" {
			continue
		}
		if _, err := os.Stat(top.name); errors.Is(err, fs.ErrNotExist) && opts.MissingOK {
			continue
		}
		f, err := c.load(top.name, top.includeDir, 0)
		if err != nil {
			return nil, err
		}
		c.files = append(c.files, f)
	}
	return c, nil
}

func (c *SSHConfig) load(name, includeDir string, depth int) (*configFile, error) {
	if depth > maxIncludeDepth {
		return nil, fmt.Errorf("remote: ssh config %s: Include nested more than %d deep; does a file include itself?", name, maxIncludeDepth)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("remote: reading ssh config: %w", err)
	}
	cfg, err := sshconfig.DecodeBytes(hideIncludes(data))
	if err != nil {
		return nil, parseError(name, err)
	}
	f := &configFile{name: name, cfg: cfg, includes: map[*sshconfig.KV][]*configFile{}}
	for _, h := range cfg.Hosts {
		for _, n := range h.Nodes {
			kv, ok := n.(*sshconfig.KV)
			if !ok || !strings.EqualFold(kv.Key, includeKeyword) {
				continue
			}
			at := fmt.Sprintf("%s:%d", name, kv.Pos().Line)
			args, err := splitArgs(rawValue(kv))
			if err != nil {
				return nil, fmt.Errorf("remote: %s: Include: %v", at, err)
			}
			if len(args) == 0 {
				return nil, fmt.Errorf("remote: %s: Include names no file", at)
			}
			for _, arg := range args {
				pattern, err := c.includePath(arg, includeDir)
				if err != nil {
					return nil, fmt.Errorf("remote: %s: Include %s: %v", at, arg, err)
				}
				// As for OpenSSH, a name that matches nothing is no error.
				matches, err := filepath.Glob(pattern)
				if err != nil {
					return nil, fmt.Errorf("remote: %s: Include %s: %v", at, arg, err)
				}
				for _, m := range matches {
					child, err := c.load(m, includeDir, depth+1)
					if err != nil {
						return nil, err
					}
					f.includes[kv] = append(f.includes[kv], child)
				}
			}
		}
	}
	return f, nil
}

// includePath makes an Include argument a path: ~ is the home directory,
// and a relative path is relative to the Include directory.
func (c *SSHConfig) includePath(arg, includeDir string) (string, error) {
	p, err := expandTilde(arg, c.opts.Home)
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(includeDir, p)
	}
	return p, nil
}

// parseError turns the parser's "(line, col): message" into "file:line".
func parseError(name string, err error) error {
	var line, col int
	msg := err.Error()
	if n, _ := fmt.Sscanf(msg, "(%d, %d): ", &line, &col); n == 2 {
		if _, rest, ok := strings.Cut(msg, "): "); ok {
			return fmt.Errorf("remote: %s:%d: %s", name, line, strings.TrimPrefix(strings.TrimSpace(rest), "ssh_config: "))
		}
	}
	return fmt.Errorf("remote: ssh config %s: %v", name, err)
}

// hideIncludes renames every Include keyword to includeKeyword. A keyword
// is what the parser takes it to be: the first word of a line, ended by
// a blank or '='; case does not matter.
func hideIncludes(data []byte) []byte {
	lines := strings.SplitAfter(string(data), "\n")
	for i, line := range lines {
		body := strings.TrimLeft(line, " \t")
		end := strings.IndexAny(body, " \t=\r\n")
		if end < 0 {
			end = len(body)
		}
		if strings.EqualFold(body[:end], "include") {
			lines[i] = line[:len(line)-len(body)] + includeKeyword + body[end:]
		}
	}
	return []byte(strings.Join(lines, ""))
}

// rawValue returns a keyword's value as written, quotes and all. The
// parser's Value strips one pair of quotes around the whole value, which
// mangles a list of quoted arguments; its String method keeps them.
func rawValue(kv *sshconfig.KV) string {
	line := strings.TrimLeft(kv.String(), " \t")
	line = strings.TrimPrefix(line, kv.Key)
	if rest, ok := strings.CutPrefix(line, " = "); ok {
		line = rest
	} else {
		line = strings.TrimPrefix(line, " ")
	}
	if kv.Comment != "" {
		line = strings.TrimSuffix(line, "#"+kv.Comment)
	}
	return strings.TrimRight(line, " \t\r")
}

// splitArgs splits a value into arguments as OpenSSH's argv_split does:
// at blanks, except inside single or double quotes, with a backslash
// escaping a quote, a backslash or (outside quotes) a blank.
func splitArgs(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inArg := false
	var quote byte
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '\\' && i+1 < len(s) && (strings.IndexByte(`\"'`, s[i+1]) >= 0 || quote == 0 && s[i+1] == ' '):
			i++
			cur.WriteByte(s[i])
			inArg = true
		case quote != 0 && ch == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(ch)
		case ch == '"' || ch == '\'':
			quote = ch
			inArg = true
		case ch == ' ' || ch == '\t':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteByte(ch)
			inArg = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote in %q", s)
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args, nil
}

// setting is one keyword line as found, with its place for messages.
type setting struct {
	args []string
	file string
	line int
	seq  int // order found, to tell which of two keywords came first
}

func (s setting) at() string { return fmt.Sprintf("%s:%d", s.file, s.line) }

// one returns the single argument of a keyword that takes one.
func (s setting) one(keyword string) (string, error) {
	if len(s.args) != 1 {
		return "", fmt.Errorf("remote: %s: %s takes one argument, found %d", s.at(), keyword, len(s.args))
	}
	return s.args[0], nil
}

// hostSettings collects what the files say about one host: the first
// value of each keyword and every IdentityFile, as ssh collects them.
type hostSettings struct {
	alias         string
	first         map[string]setting
	identityFiles []setting
	n             int
}

// lookup gathers the settings for alias, the host name as the user gave it.
func (c *SSHConfig) lookup(alias string) (*hostSettings, error) {
	s := &hostSettings{alias: alias, first: map[string]setting{}}
	for _, f := range c.files {
		if err := s.read(f); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *hostSettings) read(f *configFile) error {
	for i, h := range f.cfg.Hosts {
		// The first block is the implicit one before any Host line; it
		// applies to every host (for an included file: whenever the
		// Include line itself applied).
		if i > 0 {
			ok, err := s.matches(f, h)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
		}
		for _, n := range h.Nodes {
			kv, ok := n.(*sshconfig.KV)
			if !ok {
				continue
			}
			key := strings.ToLower(kv.Key)
			if key == includeKeyword {
				for _, child := range f.includes[kv] {
					if err := s.read(child); err != nil {
						return err
					}
				}
				continue
			}
			args, err := splitArgs(rawValue(kv))
			if err != nil {
				return fmt.Errorf("remote: %s:%d: %s: %v", f.name, kv.Pos().Line, kv.Key, err)
			}
			st := setting{args: args, file: f.name, line: kv.Pos().Line, seq: s.n}
			s.n++
			if key == "identityfile" {
				s.identityFiles = append(s.identityFiles, st)
				continue
			}
			if _, seen := s.first[key]; !seen {
				s.first[key] = st
			}
		}
	}
	return nil
}

// matches reports whether a Host or Match block applies. Host patterns
// match the name as given; Match host matches the HostName found so far,
// as OpenSSH evaluates it at that point of the file.
func (s *hostSettings) matches(f *configFile, h *sshconfig.Host) (bool, error) {
	header, _, _ := strings.Cut(strings.TrimLeft(h.String(), " \t"), "\n")
	keyword := strings.FieldsFunc(header, func(r rune) bool { return r == ' ' || r == '\t' || r == '=' })
	if len(keyword) == 0 || !strings.EqualFold(keyword[0], "match") {
		found := false
		for _, p := range h.Patterns {
			text, negated := strings.CutPrefix(p.String(), "!")
			if globMatch(text, s.alias) {
				if negated {
					return false, nil
				}
				found = true
			}
		}
		return found, nil
	}
	// The parser knows "Match all" and "Match host"; anything after the
	// host list would be a second criterion it reads as more patterns.
	if len(h.Patterns) != 1 {
		return false, fmt.Errorf("remote: %s: %q: only a single criterion, \"all\" or \"host LIST\", is supported in Match", f.name, strings.TrimSpace(header))
	}
	host, err := s.hostName()
	if err != nil {
		return false, err
	}
	return matchList(h.Patterns[0].String(), strings.ToLower(host)), nil
}

// hostName is the HostName found so far with %h expanded, or the alias.
func (s *hostSettings) hostName() (string, error) {
	st, ok := s.first["hostname"]
	if !ok {
		return s.alias, nil
	}
	v, err := st.one("HostName")
	if err != nil {
		return "", err
	}
	name, err := expandTokens(v, map[byte]string{'h': s.alias})
	if err != nil {
		return "", fmt.Errorf("remote: %s: HostName: %v", st.at(), err)
	}
	if name == "" {
		return "", fmt.Errorf("remote: %s: HostName is empty", st.at())
	}
	return name, nil
}

// matchList matches a comma-separated pattern list as OpenSSH's
// match_pattern_list does, without regard to case: a matching negated
// pattern rules the host out, else any matching pattern lets it in.
func matchList(list, host string) bool { return matchPatterns(strings.Split(list, ","), host) }

// matchPatterns is that rule over patterns already split, for ssh_config's
// lists and known_hosts' names alike; a known_hosts name may also be hashed
// (|1|...), which matches only the host it was made from.
func matchPatterns(patterns []string, host string) bool {
	found := false
	for _, p := range patterns {
		if strings.HasPrefix(p, "|1|") {
			found = found || hashedMatch(p, host)
			continue
		}
		p, negated := strings.CutPrefix(p, "!")
		if globMatch(strings.ToLower(p), host) {
			if negated {
				return false
			}
			found = true
		}
	}
	return found
}

// globMatch matches OpenSSH's patterns: * is any run of characters, ? is
// exactly one. (The parser's own matcher lets ? match nothing.)
func globMatch(pattern, s string) bool {
	for len(pattern) > 0 {
		switch pattern[0] {
		case '*':
			pattern = strings.TrimLeft(pattern, "*")
			if pattern == "" {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if globMatch(pattern, s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
		default:
			if s == "" || s[0] != pattern[0] {
				return false
			}
		}
		pattern, s = pattern[1:], s[1:]
	}
	return s == ""
}
