package remote

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"slices"

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
	file := files[0]
	check := func(hostname string, remoteAddr net.Addr, key ssh.PublicKey) error {
		err := db(hostname, remoteAddr, key)
		if err == nil {
			return nil
		}
		hkErr := &HostKeyError{Host: hostname, Key: key, KnownHostsFile: file}
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
	if trustsAuthorityFor(db, present, addr) {
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

// trustsAuthorityFor reports whether an @cert-authority line of files
// applies to addr. Asking for certificates only then matters: a server
// whose certificate comes from a CA not trusted for it would otherwise
// fail the check even though its plain key is on record.
//
// knownhosts keeps its matching rules (wildcards, negation, hashed names,
// [host]:port) to itself, so each CA key is put to the database in a
// certificate with a bogus signature: for a CA not trusted for addr the
// database refuses before it looks at the signature, with the same error
// as for a key no file names, which a throwaway CA yields.
func trustsAuthorityFor(db ssh.HostKeyCallback, files []string, addr string) bool {
	var cas []ssh.PublicKey
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for len(data) > 0 {
			marker, _, key, _, rest, err := ssh.ParseKnownHosts(data)
			if err != nil {
				break
			}
			if marker == "cert-authority" {
				cas = append(cas, key)
			}
			data = rest
		}
	}
	if len(cas) == 0 {
		return false
	}
	untrusted := probeKey()
	hostKey := probeKey()
	if untrusted == nil || hostKey == nil {
		return false
	}
	probe := func(ca ssh.PublicKey) string {
		cert := &ssh.Certificate{
			Key: hostKey, CertType: ssh.HostCert, ValidBefore: ssh.CertTimeInfinity,
			SignatureKey: ca, Signature: &ssh.Signature{Format: ca.Type(), Blob: []byte{0}},
		}
		if err := db(addr, &net.TCPAddr{}, cert); err != nil {
			return err.Error()
		}
		return ""
	}
	refused := probe(untrusted)
	for _, ca := range cas {
		if probe(ca) != refused {
			return true
		}
	}
	return false
}

// probeKey returns a throwaway public key, or nil if none can be made.
func probeKey() ssh.PublicKey {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil
	}
	return k
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
	probe := probeKey()
	if probe == nil {
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
