package pve

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Fingerprint returns the SHA-256 fingerprint of a DER certificate in the
// form the Proxmox web UI shows: upper-case hex bytes joined by colons.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

// parseFingerprint accepts a SHA-256 fingerprint with or without colons,
// in either case, optionally prefixed "sha256:" or "SHA256 ".
func parseFingerprint(s string) ([]byte, error) {
	t := strings.TrimSpace(s)
	if i := strings.IndexAny(t, ": "); i >= 0 && strings.EqualFold(t[:i], "sha256") {
		t = strings.TrimSpace(t[i+1:])
	}
	t = strings.ReplaceAll(t, ":", "")
	b, err := hex.DecodeString(t)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("pve: TLS fingerprint %q is not a SHA-256 fingerprint (64 hex digits, colons optional)", s)
	}
	return b, nil
}

// CertificateError reports a certificate that was refused, with the
// fingerprint a user can compare against the node's (Datacenter or node
// view → System → Certificates) before pinning it.
type CertificateError struct {
	Err         error // ErrUntrustedCertificate or ErrFingerprintMismatch
	Fingerprint string
	Cause       error // the verifier's own error, if any
}

// Error shows the fingerprint the server presented.
func (e *CertificateError) Error() string {
	if e.Err == ErrFingerprintMismatch {
		return fmt.Sprintf("pve: TLS certificate of the server (SHA-256 %s) does not match the pinned fingerprint; "+
			"the certificate was replaced, or someone is intercepting the connection", e.Fingerprint)
	}
	return fmt.Sprintf("pve: TLS certificate of the server is not trusted (%v); if it is the node's self-signed "+
		"certificate, compare its fingerprint with the one the node shows and pin it: %s", e.Cause, e.Fingerprint)
}

// Unwrap returns the sentinel and the verifier's error, for errors.Is.
func (e *CertificateError) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Cause}
}

// pinVerifier accepts exactly the certificate with the given fingerprint.
// Pinning replaces CA verification, and the host name is not checked:
// node certificates name the node, which the URL often does not.
func pinVerifier(want []byte) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return &CertificateError{Err: ErrFingerprintMismatch}
		}
		leaf := cs.PeerCertificates[0].Raw
		got := sha256.Sum256(leaf)
		if subtle.ConstantTimeCompare(got[:], want) != 1 {
			return &CertificateError{Err: ErrFingerprintMismatch, Fingerprint: Fingerprint(leaf)}
		}
		return nil
	}
}

// certificateError returns the *CertificateError for a refused
// certificate, building one for a failed default verification so it
// carries the fingerprint to pin; it returns nil for other errors.
func certificateError(err error) *CertificateError {
	var certErr *CertificateError
	if errors.As(err, &certErr) {
		return certErr
	}
	var verr *tls.CertificateVerificationError
	if !errors.As(err, &verr) || len(verr.UnverifiedCertificates) == 0 {
		return nil
	}
	return &CertificateError{
		Err:         ErrUntrustedCertificate,
		Fingerprint: Fingerprint(verr.UnverifiedCertificates[0].Raw),
		Cause:       verr.Err,
	}
}

// tlsConfig builds the client TLS settings for the chosen trust mode.
func tlsConfig(pin []byte, roots *x509.CertPool) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	if pin != nil {
		c.InsecureSkipVerify = true // replaced by the pin check below
		c.VerifyConnection = pinVerifier(pin)
	}
	return c
}
