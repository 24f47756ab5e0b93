package remote

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// dialAgent connects to the ssh-agent when cfg asks for one. The returned
// function closes the connection; it is only needed during the handshakes.
func dialAgent(cfg Config) (agent.ExtendedAgent, func(), error) {
	if !cfg.UseAgent {
		return nil, func() {}, nil
	}
	conn, err := dialAgentSocket(cfg.AgentSocket)
	if err != nil {
		return nil, func() {}, fmt.Errorf("remote: connecting to ssh-agent: %w", err)
	}
	return agent.NewClient(conn), func() { conn.Close() }, nil
}

// identity is one key file to offer: its signer, or, for an encrypted file
// whose key the agent holds, the public key the agent signs for.
type identity struct {
	file   string
	signer ssh.Signer
	pub    ssh.PublicKey
}

// hopAuth logs in to one host: the keys of its identity files first, in
// order, so an explicit key is not crowded out by the server's
// MaxAuthTries, then the agent's other keys unless IdentitiesOnly.
type hopAuth struct {
	ids            []identity
	agent          agent.ExtendedAgent
	identitiesOnly bool
	// skipped are encrypted identity files that were not offered: no
	// passphrase callback and the agent does not hold their key. A refused
	// login names them, since one of them may be the key the server wants.
	skipped []string
}

func newHopAuth(h Hop, passphrase func(string) ([]byte, error), ag agent.ExtendedAgent) (*hopAuth, error) {
	a := &hopAuth{agent: ag, identitiesOnly: h.IdentitiesOnly}
	var agentKeys []*agent.Key
	if ag != nil {
		keys, err := ag.List()
		if err != nil {
			return nil, fmt.Errorf("remote: listing ssh-agent keys: %w", err)
		}
		agentKeys = keys
	}
	var firstEncrypted error
	for _, file := range h.IdentityFiles {
		id, locked, err := loadIdentity(file, passphrase, agentKeys)
		if err != nil {
			return nil, err
		}
		if locked != nil {
			a.skipped = append(a.skipped, file)
			if firstEncrypted == nil {
				firstEncrypted = locked
			}
			continue
		}
		a.ids = append(a.ids, id)
	}
	agentOffers := ag != nil && !h.IdentitiesOnly
	if len(a.ids) == 0 && !agentOffers {
		switch {
		case firstEncrypted != nil:
			return nil, firstEncrypted
		case ag != nil:
			return nil, fmt.Errorf("%w: IdentitiesOnly is set for %s but no identity file names a key", ErrAuth, h.Host)
		}
		return nil, fmt.Errorf("%w: no identity file and no ssh-agent to offer a key", ErrAuth)
	}
	return a, nil
}

func (a *hopAuth) method() ssh.AuthMethod { return ssh.PublicKeysCallback(a.signers) }

func (a *hopAuth) signers() ([]ssh.Signer, error) {
	var agentSigners []ssh.Signer
	if a.agent != nil {
		s, err := a.agent.Signers()
		if err != nil {
			return nil, fmt.Errorf("remote: listing ssh-agent keys: %w", err)
		}
		agentSigners = s
	}
	var out []ssh.Signer
	offered := map[string]bool{}
	add := func(s ssh.Signer) {
		if k := string(s.PublicKey().Marshal()); !offered[k] {
			offered[k] = true
			out = append(out, s)
		}
	}
	for _, id := range a.ids {
		if id.signer != nil {
			add(id.signer)
			continue
		}
		for _, s := range agentSigners {
			if bytes.Equal(s.PublicKey().Marshal(), id.pub.Marshal()) {
				add(s)
				break
			}
		}
	}
	if !a.identitiesOnly {
		for _, s := range agentSigners {
			add(s)
		}
	}
	return out, nil
}

// refused builds the error for a server that accepted none of the keys.
func (a *hopAuth) refused(addr, user string, err error) error {
	if len(a.skipped) == 0 {
		return fmt.Errorf("%w: %s refused every key offered for user %q (%v)", ErrAuth, addr, user, err)
	}
	// Both kinds hold: the login failed, and an encrypted key that might
	// have worked was never tried.
	return fmt.Errorf("%w: %s refused every key offered for user %q (%v); not offered, %w: %s (load into ssh-agent with ssh-add)",
		ErrAuth, addr, user, err, ErrEncryptedKey, strings.Join(a.skipped, ", "))
}

// loadIdentity parses one private key file. Errors name the file but
// never its content or a passphrase. An encrypted file whose public key
// the agent holds needs no passphrase: the agent signs. An encrypted file
// that can be neither decrypted nor signed for yields no identity and,
// as locked, the error to report if nothing else can log in.
func loadIdentity(file string, passphrase func(string) ([]byte, error), agentKeys []*agent.Key) (id identity, locked, err error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return identity{}, nil, fmt.Errorf("remote: reading identity file: %w", err)
	}
	s, err := ssh.ParsePrivateKey(data)
	var missing *ssh.PassphraseMissingError
	if !errors.As(err, &missing) {
		if err != nil {
			return identity{}, nil, fmt.Errorf("remote: identity file %s: %w", file, err)
		}
		return identity{file: file, signer: s}, nil, nil
	}
	pub := missing.PublicKey
	if pub == nil {
		// Older PEM-encrypted keys hide the public key too; OpenSSH then
		// reads the .pub file beside them.
		if b, err := os.ReadFile(file + ".pub"); err == nil {
			pub, _, _, _, _ = ssh.ParseAuthorizedKey(b)
		}
	}
	if pub != nil {
		for _, k := range agentKeys {
			if bytes.Equal(k.Marshal(), pub.Marshal()) {
				return identity{file: file, pub: pub}, nil, nil
			}
		}
	}
	if passphrase == nil {
		return identity{}, fmt.Errorf("%w: %s needs a passphrase; load it into ssh-agent (ssh-add %s) and use the agent",
			ErrEncryptedKey, file, ShellQuote(file)), nil
	}
	pass, err := passphrase(file)
	if err != nil {
		return identity{}, nil, fmt.Errorf("remote: passphrase for %s: %w", file, err)
	}
	s, err = ssh.ParsePrivateKeyWithPassphrase(data, pass)
	clear(pass)
	if err != nil {
		return identity{}, nil, fmt.Errorf("%w: %s: wrong passphrase or unreadable key (%v)", ErrEncryptedKey, file, err)
	}
	return identity{file: file, signer: s}, nil, nil
}
