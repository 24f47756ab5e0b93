package remote

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Sentinel errors. Test for them with errors.Is; the errors returned carry
// more detail (host, file, fingerprint) in their text.
var (
	// ErrUnknownHost means the server's host key is not in known_hosts.
	ErrUnknownHost = errors.New("remote: unknown host key")
	// ErrHostKeyMismatch means known_hosts holds a different key for the
	// server: the host was reinstalled, or someone is in the middle.
	ErrHostKeyMismatch = errors.New("remote: host key mismatch")
	// ErrHostKeyRevoked means the server offered a key marked @revoked.
	ErrHostKeyRevoked = errors.New("remote: host key revoked")
	// ErrAuth means the server accepted none of the offered keys, or there
	// were no keys to offer.
	ErrAuth = errors.New("remote: authentication failed")
	// ErrEncryptedKey means an identity file is protected by a passphrase
	// and no Config.Passphrase was given, or the passphrase was wrong.
	ErrEncryptedKey = errors.New("remote: identity file is encrypted")
	// ErrConnectionLost means the SSH connection ended before the remote
	// command reported how it exited.
	ErrConnectionLost = errors.New("remote: connection lost")
	// ErrExists means Upload found the destination file already present and
	// was not allowed to overwrite it.
	ErrExists = errors.New("remote: file exists")
)

// HostKeyError reports a host key that failed the known_hosts check. It
// unwraps to ErrUnknownHost, ErrHostKeyMismatch or ErrHostKeyRevoked.
type HostKeyError struct {
	Err            error         // one of the host key sentinels
	Host           string        // host:port as dialed
	Key            ssh.PublicKey // the key the server offered
	KnownHostsFile string        // the file that was consulted
	Known          []string      // file:line of the keys on record, for a mismatch
}

// Fingerprint returns the SHA-256 fingerprint of the offered key in the
// form ssh-keygen -l prints, so a user can compare it out of band.
func (e *HostKeyError) Fingerprint() string { return ssh.FingerprintSHA256(e.Key) }

// Line returns the known_hosts line that would accept the offered key.
// A caller must only add it after the user confirmed the fingerprint.
func (e *HostKeyError) Line() string {
	return knownhosts.Line([]string{knownhosts.Normalize(e.Host)}, e.Key)
}

// Error says what is wrong and how to fix it, without secrets.
func (e *HostKeyError) Error() string {
	host, port := splitHostPort(e.Host)
	pattern := knownhosts.Normalize(e.Host)
	switch e.Err {
	case ErrUnknownHost:
		return fmt.Sprintf("remote: host key of %s is not in %s (server offered %s %s); "+
			"check that fingerprint out of band, then record the key, e.g. with: %s >> %s",
			e.Host, e.KnownHostsFile, e.Key.Type(), e.Fingerprint(),
			ShellQuote("ssh-keyscan", "-p", port, "-t", keyscanType(e.Key.Type()), host),
			ShellQuote(e.KnownHostsFile))
	case ErrHostKeyMismatch:
		return fmt.Sprintf("remote: host key of %s has CHANGED: server offered %s %s, "+
			"but %s holds a different key (%s); someone may be intercepting the connection, "+
			"or the node was reinstalled; if the change is expected, remove the old entry with: %s",
			e.Host, e.Key.Type(), e.Fingerprint(), e.KnownHostsFile, strings.Join(e.Known, ", "),
			ShellQuote("ssh-keygen", "-f", e.KnownHostsFile, "-R", pattern))
	case ErrHostKeyRevoked:
		return fmt.Sprintf("remote: host key %s %s of %s is marked @revoked in %s",
			e.Key.Type(), e.Fingerprint(), e.Host, e.KnownHostsFile)
	}
	return fmt.Sprintf("remote: host key check for %s failed: %v", e.Host, e.Err)
}

// Unwrap returns the sentinel, for errors.Is.
func (e *HostKeyError) Unwrap() error { return e.Err }

// keyscanType maps a key type to the name ssh-keyscan -t expects.
func keyscanType(keyType string) string {
	switch {
	case keyType == ssh.KeyAlgoED25519:
		return "ed25519"
	case keyType == ssh.KeyAlgoRSA:
		return "rsa"
	case strings.HasPrefix(keyType, "ecdsa-"):
		return "ecdsa"
	}
	return keyType
}

// ExitError reports a remote command that ran and failed.
type ExitError struct {
	Command string // the program name (first argument), not the whole line
	Status  int    // exit status; -1 when killed by a signal
	Signal  string // signal name without "SIG" when killed by one
	Stderr  string // the last few KiB of the command's standard error
}

// Error names the command, its status and the last lines of its stderr.
func (e *ExitError) Error() string {
	var b strings.Builder
	if e.Signal != "" {
		fmt.Fprintf(&b, "remote: %s killed by signal %s", e.Command, e.Signal)
	} else {
		fmt.Fprintf(&b, "remote: %s exited with status %d", e.Command, e.Status)
	}
	if msg := lastLines(e.Stderr, 5); msg != "" {
		b.WriteString(": ")
		b.WriteString(msg)
	}
	return b.String()
}

// lastLines returns up to n trailing non-empty lines of s joined by "; ",
// so an error message stays one line yet keeps the part that explains.
func lastLines(s string, n int) string {
	var keep []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			keep = append(keep, l)
		}
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return strings.Join(keep, "; ")
}
