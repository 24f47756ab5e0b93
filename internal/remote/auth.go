package remote

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// authMethods loads the identity files and connects to the agent. The
// returned function closes the agent connection; it is only needed during
// the handshake.
func authMethods(cfg Config) ([]ssh.AuthMethod, func(), error) {
	var signers []ssh.Signer
	for _, file := range cfg.IdentityFiles {
		s, err := loadIdentity(file, cfg.Passphrase)
		if err != nil {
			return nil, func() {}, err
		}
		signers = append(signers, s)
	}
	var agentClient agent.ExtendedAgent
	closeAgent := func() {}
	if cfg.UseAgent {
		conn, err := net.Dial("unix", cfg.AgentSocket)
		if err != nil {
			return nil, closeAgent, fmt.Errorf("remote: connecting to ssh-agent: %w", err)
		}
		closeAgent = func() { conn.Close() }
		agentClient = agent.NewClient(conn)
	}
	if len(signers) == 0 && agentClient == nil {
		return nil, closeAgent, fmt.Errorf("%w: no identity file and no ssh-agent to offer a key", ErrAuth)
	}
	keys := func() ([]ssh.Signer, error) {
		all := signers
		if agentClient != nil {
			agentSigners, err := agentClient.Signers()
			if err != nil {
				return nil, fmt.Errorf("remote: listing ssh-agent keys: %w", err)
			}
			all = append(all[:len(all):len(all)], agentSigners...)
		}
		return all, nil
	}
	return []ssh.AuthMethod{ssh.PublicKeysCallback(keys)}, closeAgent, nil
}

// loadIdentity parses one private key file. Errors name the file but
// never its content or a passphrase.
func loadIdentity(file string, passphrase func(string) ([]byte, error)) (ssh.Signer, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("remote: reading identity file: %w", err)
	}
	s, err := ssh.ParsePrivateKey(data)
	var missing *ssh.PassphraseMissingError
	if !errors.As(err, &missing) {
		if err != nil {
			return nil, fmt.Errorf("remote: identity file %s: %w", file, err)
		}
		return s, nil
	}
	if passphrase == nil {
		return nil, fmt.Errorf("%w: %s needs a passphrase; load it into ssh-agent (ssh-add %s) and use the agent",
			ErrEncryptedKey, file, ShellQuote(file))
	}
	pass, err := passphrase(file)
	if err != nil {
		return nil, fmt.Errorf("remote: passphrase for %s: %w", file, err)
	}
	s, err = ssh.ParsePrivateKeyWithPassphrase(data, pass)
	clear(pass)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: wrong passphrase or unreadable key (%v)", ErrEncryptedKey, file, err)
	}
	return s, nil
}
