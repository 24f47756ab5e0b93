package remote

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// hostKeyCheck returns the callback that checks a host's key against the
// known_hosts files (the first is the one messages name), and the host
// key algorithms to ask for. The algorithms matter: x/crypto prefers
// ECDSA, so a node whose known_hosts entry is ed25519 would otherwise
// present its ECDSA key and look like a changed key; and a server only
// shows its certificate to a client that asks for one.
func hostKeyCheck(files []string, insecure bool, addr string) (ssh.HostKeyCallback, []string, error) {
	if insecure {
		return ssh.InsecureIgnoreHostKey(), nil, nil
	}
	// A missing file counts as empty, as it does for OpenSSH.
	var present []string
	for _, f := range files {
		if _, err := os.Stat(f); !errors.Is(err, fs.ErrNotExist) {
			present = append(present, f)
		}
	}
	db, err := knownhosts.New(present...)
	if err != nil {
		return nil, nil, fmt.Errorf("remote: reading known_hosts: %w", err)
	}
	marks, err := readMarkers(present)
	if err != nil {
		return nil, nil, err
	}
	// Plain keys go to knownhosts; certificates are checked against the
	// @cert-authority lines here, because knownhosts matches a wildcard
	// pattern such as "*" only on port 22, where OpenSSH matches it
	// against "[host]:port" and so on every port.
	checker := &ssh.CertChecker{
		IsHostAuthority: marks.isAuthority,
		HostKeyFallback: db,
	}
	file := files[0]
	check := func(hostname string, remoteAddr net.Addr, key ssh.PublicKey) error {
		if cert, ok := key.(*ssh.Certificate); ok {
			if marks.isRevoked(cert.Key) || marks.isRevoked(cert.SignatureKey) {
				return &HostKeyError{Err: ErrHostKeyRevoked, Host: hostname, Key: cert.Key, KnownHostsFile: file}
			}
			if !marks.isAuthority(cert.SignatureKey, hostname) {
				// As ssh does: a certificate from a CA not trusted for
				// this host is only as good as its plain key.
				key = cert.Key
			}
		}
		hkErr := &HostKeyError{Host: hostname, Key: key, KnownHostsFile: file}
		err := checker.CheckHostKey(hostname, remoteAddr, key)
		if err == nil {
			return nil
		}
		var keyErr *knownhosts.KeyError
		var revoked *knownhosts.RevokedError
		switch {
		case errors.As(err, &revoked):
			hkErr.Err = ErrHostKeyRevoked
		case errors.As(err, &keyErr) && len(keyErr.Want) == 0:
			hkErr.Err = ErrUnknownHost
		case errors.As(err, &keyErr):
			hkErr.Err = ErrHostKeyMismatch
			for _, k := range keyErr.Want {
				hkErr.Known = append(hkErr.Known, fmt.Sprintf("%s:%d", k.Filename, k.Line))
			}
		default:
			return fmt.Errorf("remote: checking host key of %s: %w", hostname, err)
		}
		return hkErr
	}
	algos := knownAlgorithms(db, addr)
	if marks.hasAuthorityFor(addr) {
		algos = append(slices.Clone(certAlgorithms), algos...)
	}
	return check, algos, nil
}

// certAlgorithms are the host certificate algorithms, in OpenSSH's order.
var certAlgorithms = []string{
	ssh.CertAlgoED25519v01,
	ssh.CertAlgoECDSA256v01, ssh.CertAlgoECDSA384v01, ssh.CertAlgoECDSA521v01,
	ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01, ssh.CertAlgoRSAv01,
}

// markedLine is an @cert-authority or @revoked line of a known_hosts file.
type markedLine struct {
	patterns []string
	key      ssh.PublicKey
}

// markers are the marked lines of the known_hosts files.
type markers struct {
	authorities []markedLine
	revoked     []ssh.PublicKey
}

func readMarkers(files []string) (markers, error) {
	var m markers
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return m, fmt.Errorf("remote: reading known_hosts: %w", err)
		}
		for {
			marker, hosts, key, _, rest, err := ssh.ParseKnownHosts(data)
			if err == io.EOF {
				break
			}
			if err != nil {
				// knownhosts.New read the same file without complaint.
				return m, fmt.Errorf("remote: reading known_hosts %s: %w", f, err)
			}
			switch marker {
			case "cert-authority":
				m.authorities = append(m.authorities, markedLine{patterns: hosts, key: key})
			case "revoked":
				m.revoked = append(m.revoked, key)
			}
			data = rest
		}
	}
	return m, nil
}

// hasAuthorityFor reports whether some CA is trusted for addr. Asking for
// certificates only then matters: a server whose certificate comes from
// a CA not trusted for it would otherwise fail the check even though its
// plain key is on record.
func (m markers) hasAuthorityFor(addr string) bool {
	for _, a := range m.authorities {
		if a.matches(addr) {
			return true
		}
	}
	return false
}

func (m markers) isAuthority(key ssh.PublicKey, addr string) bool {
	for _, a := range m.authorities {
		if bytes.Equal(a.key.Marshal(), key.Marshal()) && a.matches(addr) {
			return true
		}
	}
	return false
}

func (m markers) isRevoked(key ssh.PublicKey) bool {
	for _, k := range m.revoked {
		if bytes.Equal(k.Marshal(), key.Marshal()) {
			return true
		}
	}
	return false
}

// matches applies a line's host patterns to addr as OpenSSH does: to
// "host", or "[host]:port" off port 22, in lower case; a pattern may be
// hashed (|1|salt|hash), use * and ?, or be negated with !, which rules
// the host out.
func (l markedLine) matches(addr string) bool {
	host := strings.ToLower(knownhosts.Normalize(addr))
	return matchPatterns(l.patterns, host)
}

// hashedMatch checks a hashed known_hosts name: |1|base64(salt)|base64(HMAC-SHA1(salt, host)).
func hashedMatch(pattern, host string) bool {
	parts := strings.Split(pattern, "|")
	if len(parts) != 4 {
		return false
	}
	salt, err1 := base64.StdEncoding.DecodeString(parts[2])
	want, err2 := base64.StdEncoding.DecodeString(parts[3])
	if err1 != nil || err2 != nil {
		return false
	}
	mac := hmac.New(sha1.New, salt)
	mac.Write([]byte(host))
	return hmac.Equal(mac.Sum(nil), want)
}

// unknownHostAlgorithms is OpenSSH's order of preference, used for hosts
// not on record, so the key an error reports is the one ssh-keyscan and
// ssh would pick.
var unknownHostAlgorithms = []string{
	ssh.KeyAlgoED25519,
	ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
	ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA,
}

// knownAlgorithms asks the known_hosts database which key types it holds
// for addr, by offering a throwaway key and reading the mismatch report.
func knownAlgorithms(db ssh.HostKeyCallback, addr string) []string {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		return unknownHostAlgorithms
	}
	probe, err := ssh.NewPublicKey(pub)
	if err != nil {
		return unknownHostAlgorithms
	}
	var keyErr *knownhosts.KeyError
	if !errors.As(db(addr, &net.TCPAddr{}, probe), &keyErr) || len(keyErr.Want) == 0 {
		return unknownHostAlgorithms
	}
	var algos []string
	seen := map[string]bool{}
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			algos = append(algos, a)
		}
	}
	for _, k := range keyErr.Want {
		if k.Key.Type() == ssh.KeyAlgoRSA {
			// An RSA key can sign with SHA-2; prefer that over SHA-1.
			add(ssh.KeyAlgoRSASHA512)
			add(ssh.KeyAlgoRSASHA256)
		}
		add(k.Key.Type())
	}
	return algos
}
