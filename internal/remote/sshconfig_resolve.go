package remote

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// maxJumps bounds a ProxyJump chain; a longer one is a loop, such as a
// Host * block whose ProxyJump also applies to the jump host itself.
const maxJumps = 10

// defaultIdentityNames are the key files ssh tries when no IdentityFile
// is configured, in its order, less the kinds x/crypto cannot sign with
// (security keys) or no longer accepts (DSA).
var defaultIdentityNames = []string{"id_rsa", "id_ecdsa", "id_ed25519"}

// Resolve returns the Config for reaching flags.Host, the name the user
// gave (an alias of the file, or a real host name), with the file's
// settings filled in where flags leaves them unset, as ssh's command line
// wins over its files:
//
//   - Host becomes HostName (%h expanded); Port and User come from the
//     file unless set; User falls back to DefaultUser, then LocalUser.
//   - IdentityFiles are flags.IdentityFiles, then the file's IdentityFile
//     lines (~ and %d %u %h %r %p %n %i %% expanded) that exist, as ssh
//     skips missing ones; with neither, the default key files that exist.
//   - IdentitiesOnly is set if flags or the file set it.
//   - Known hosts: flags.KnownHostsFile and ExtraKnownHostsFiles if set,
//     for every host on the way; else UserKnownHostsFile; else
//     Home/.ssh/known_hosts and known_hosts2.
//   - Jumps, unless flags sets them, come from ProxyJump: a comma-separated
//     chain of [user@]host[:port] or ssh:// URIs, each looked up in the
//     file in turn (its own ProxyJump applies when it is first in the
//     chain), "none" for no jump.
//
// Resolve refuses ProxyCommand, which would run a local program, and
// ${VAR} in paths, which needs the environment. StrictHostKeyChecking
// and HostKeyAlias are not honoured: host keys are always checked against
// the known_hosts files under the name connected to. Other keywords
// (IdentityAgent, CertificateFile, CanonicalizeHostname, ...) are
// ignored.
func (c *SSHConfig) Resolve(flags Config) (Config, error) {
	if flags.Host == "" {
		return Config{}, errors.New("remote: Config.Host is empty")
	}
	defaultUser := c.opts.DefaultUser
	if defaultUser == "" {
		defaultUser = c.opts.LocalUser
	}
	// The caller's known_hosts files serve every host on the way; its
	// keys and IdentitiesOnly are for the target, as ssh's -i is.
	var knownHosts []string
	if flags.KnownHostsFile != "" || len(flags.ExtraKnownHostsFiles) > 0 {
		knownHosts = flags.target().knownHostsFiles()
	}
	target, proxyJump, err := c.resolveHost(flags.Host, hostFlags{
		user: flags.User, port: flags.Port, defaultUser: defaultUser,
		identityFiles: flags.IdentityFiles, identitiesOnly: flags.IdentitiesOnly, knownHosts: knownHosts,
	})
	if err != nil {
		return Config{}, err
	}
	out := flags
	out.User, out.Host, out.Port = target.User, target.Host, target.Port
	out.IdentityFiles = target.IdentityFiles
	out.IdentitiesOnly = target.IdentitiesOnly
	out.KnownHostsFile, out.ExtraKnownHostsFiles = target.KnownHostsFile, target.ExtraKnownHostsFiles
	if flags.Jumps == nil {
		if out.Jumps, err = c.jumpChain(proxyJump, flags.Host, knownHosts, 0); err != nil {
			return Config{}, err
		}
	}
	return out, nil
}

// jumpChain turns a ProxyJump value into hops, nearest first. It follows
// ssh, which reaches the last host of the list through a second ssh given
// the rest of the list as its -J, so only a chain's first host brings its
// own ProxyJump.
func (c *SSHConfig) jumpChain(spec, from string, knownHosts []string, depth int) ([]Hop, error) {
	if spec == "" || strings.EqualFold(spec, "none") {
		return nil, nil
	}
	if depth >= maxJumps {
		return nil, fmt.Errorf("remote: the ProxyJump chain to %s is longer than %d hosts; "+
			"does a Host block's ProxyJump apply to the jump host too? (exclude it: Host * !jumphost)", from, maxJumps)
	}
	parts := strings.Split(spec, ",")
	user, alias, port, err := parseJumpSpec(parts[len(parts)-1])
	if err != nil {
		return nil, fmt.Errorf("remote: ProxyJump %q for %s: %w", spec, from, err)
	}
	if alias == from {
		return nil, fmt.Errorf("remote: %s has itself as ProxyJump; exclude it from the Host block that sets it (Host * !%s)", from, from)
	}
	last, ownJump, err := c.resolveHost(alias, hostFlags{user: user, port: port, defaultUser: c.opts.LocalUser, knownHosts: knownHosts})
	if err != nil {
		return nil, err
	}
	rest := strings.Join(parts[:len(parts)-1], ",")
	if rest == "" {
		rest = ownJump
	}
	before, err := c.jumpChain(rest, alias, knownHosts, depth+1)
	if err != nil {
		return nil, err
	}
	return append(before, last), nil
}

// parseJumpSpec splits one ProxyJump element: [user@]host[:port] or
// ssh://[user@]host[:port].
func parseJumpSpec(spec string) (user, host string, port int, err error) {
	s := spec
	if rest, ok := strings.CutPrefix(s, "ssh://"); ok {
		s = strings.TrimSuffix(rest, "/")
	}
	if i := strings.LastIndex(s, "@"); i >= 0 {
		user, s = s[:i], s[i+1:]
		if user == "" {
			return "", "", 0, fmt.Errorf("empty user name in %q", spec)
		}
	}
	if h, p, splitErr := net.SplitHostPort(s); splitErr == nil {
		n, convErr := strconv.Atoi(p)
		if convErr != nil || n < 1 || n > 65535 {
			return "", "", 0, fmt.Errorf("bad port in %q", spec)
		}
		host, port = h, n
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	}
	if host == "" || strings.ContainsAny(host, " \t/@") {
		return "", "", 0, fmt.Errorf("want [user@]host[:port], found %q", spec)
	}
	return user, host, port, nil
}

// hostFlags is what the caller, or a ProxyJump element, says about one
// host; set fields win over the file.
type hostFlags struct {
	user           string
	port           int
	defaultUser    string // when neither the flags nor the file name a user
	identityFiles  []string
	identitiesOnly bool
	knownHosts     []string
}

// resolveHost applies the file to one host and returns it with its
// ProxyJump value.
func (c *SSHConfig) resolveHost(alias string, flags hostFlags) (Hop, string, error) {
	s, err := c.lookup(alias)
	if err != nil {
		return Hop{}, "", err
	}
	h := Hop{User: flags.user, Port: flags.port}
	if h.Host, err = s.hostName(); err != nil {
		return Hop{}, "", err
	}
	if h.Port == 0 {
		h.Port = DefaultPort
		if st, ok := s.first["port"]; ok {
			v, err := st.one("Port")
			if err != nil {
				return Hop{}, "", err
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 65535 {
				return Hop{}, "", fmt.Errorf("remote: %s: Port %q is not a port number", st.at(), v)
			}
			h.Port = n
		}
	}
	if h.User == "" {
		h.User = flags.defaultUser
		if st, ok := s.first["user"]; ok {
			if h.User, err = st.one("User"); err != nil {
				return Hop{}, "", err
			}
		}
	}

	tokens := map[byte]string{
		'd': c.opts.Home, 'u': c.opts.LocalUser, 'i': strconv.Itoa(os.Getuid()),
		'h': h.Host, 'r': h.User, 'p': strconv.Itoa(h.Port), 'n': alias,
	}
	path := func(st setting, keyword, v string) (string, error) {
		p, err := expandTilde(v, c.opts.Home)
		if err == nil {
			p, err = expandTokens(p, tokens)
		}
		if err != nil {
			return "", fmt.Errorf("remote: %s: %s %s: %v", st.at(), keyword, v, err)
		}
		return p, nil
	}

	h.IdentityFiles = slices.Clone(flags.identityFiles)
	for _, st := range s.identityFiles {
		v, err := st.one("IdentityFile")
		if err != nil {
			return Hop{}, "", err
		}
		p, err := path(st, "IdentityFile", v)
		if err != nil {
			return Hop{}, "", err
		}
		// ssh passes over a configured key file that is not there.
		if _, err := os.Stat(p); err == nil && !slices.Contains(h.IdentityFiles, p) {
			h.IdentityFiles = append(h.IdentityFiles, p)
		}
	}
	if len(flags.identityFiles) == 0 && len(s.identityFiles) == 0 {
		for _, name := range defaultIdentityNames {
			if p := filepath.Join(c.opts.Home, ".ssh", name); fileExists(p) {
				h.IdentityFiles = append(h.IdentityFiles, p)
			}
		}
	}

	h.IdentitiesOnly = flags.identitiesOnly
	if st, ok := s.first["identitiesonly"]; ok {
		v, err := st.one("IdentitiesOnly")
		if err != nil {
			return Hop{}, "", err
		}
		switch strings.ToLower(v) {
		case "yes":
			h.IdentitiesOnly = true
		case "no":
		default:
			return Hop{}, "", fmt.Errorf("remote: %s: IdentitiesOnly %q: want yes or no", st.at(), v)
		}
	}

	known := flags.knownHosts
	switch st, ok := s.first["userknownhostsfile"]; {
	case len(known) > 0:
	case ok:
		if len(st.args) == 0 {
			return Hop{}, "", fmt.Errorf("remote: %s: UserKnownHostsFile names no file", st.at())
		}
		for _, v := range st.args {
			if strings.EqualFold(v, "none") {
				// No file of the user's: every key is unknown, and refused.
				known = append(known, os.DevNull)
				continue
			}
			p, err := path(st, "UserKnownHostsFile", v)
			if err != nil {
				return Hop{}, "", err
			}
			known = append(known, p)
		}
	default:
		known = []string{filepath.Join(c.opts.Home, ".ssh", "known_hosts"), filepath.Join(c.opts.Home, ".ssh", "known_hosts2")}
	}
	h.KnownHostsFile, h.ExtraKnownHostsFiles = known[0], known[1:]

	// ProxyJump and ProxyCommand exclude each other; the first found wins.
	jump, hasJump := s.first["proxyjump"]
	command, hasCommand := s.first["proxycommand"]
	if hasCommand && (!hasJump || command.seq < jump.seq) {
		if len(command.args) == 1 && strings.EqualFold(command.args[0], "none") {
			return h, "", nil
		}
		return Hop{}, "", fmt.Errorf("remote: %s: ProxyCommand is not supported (it would run a local program); use ProxyJump", command.at())
	}
	proxyJump := ""
	if hasJump {
		if proxyJump, err = jump.one("ProxyJump"); err != nil {
			return Hop{}, "", err
		}
	}
	return h, proxyJump, nil
}

// expandTilde replaces a leading ~ or ~/ with home. ~user is refused: its
// home directory would come from the password database.
func expandTilde(p, home string) (string, error) {
	if !strings.HasPrefix(p, "~") {
		return p, nil
	}
	if p == "~" {
		return home, nil
	}
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		return filepath.Join(home, rest), nil
	}
	return "", errors.New("~user paths are not supported; write the path out")
}

// expandTokens replaces OpenSSH's %x tokens that tokens holds and %%.
// Any other token is an error, as it is for ssh; so is ${VAR}, whose
// value would come from the environment.
func expandTokens(s string, tokens map[byte]string) (string, error) {
	if strings.Contains(s, "${") {
		return "", errors.New("environment variables (${...}) are not supported")
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", errors.New("% at the end")
		}
		i++
		if s[i] == '%' {
			b.WriteByte('%')
			continue
		}
		v, ok := tokens[s[i]]
		if !ok {
			return "", fmt.Errorf("token %%%c is not supported here", s[i])
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
