package remote

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// hostKeyCheck returns the callback that checks the server's key, and the
// host key algorithms to ask for. The algorithms matter: x/crypto prefers
// ECDSA, so a node whose known_hosts entry is ed25519 would otherwise
// present its ECDSA key and look like a changed key.
func hostKeyCheck(cfg Config, addr string) (ssh.HostKeyCallback, []string, error) {
	if cfg.InsecureIgnoreHostKey {
		return ssh.InsecureIgnoreHostKey(), nil, nil
	}
	file := cfg.KnownHostsFile
	var db ssh.HostKeyCallback
	var err error
	if _, statErr := os.Stat(file); errors.Is(statErr, fs.ErrNotExist) {
		db, err = knownhosts.New()
	} else {
		db, err = knownhosts.New(file)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("remote: reading known_hosts: %w", err)
	}
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
	return check, knownAlgorithms(db, addr), nil
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
