package pve

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Token is a Proxmox VE API token, written USER@REALM!TOKENID=SECRET.
//
// Its String, GoString and Format methods hide Secret, so printing a Token
// or a Client with any verb cannot leak it, and it is not marshalled to
// JSON.
type Token struct {
	User    string // e.g. "root"
	Realm   string // e.g. "pam"
	TokenID string // e.g. "vmatool"
	Secret  string `json:"-"` // the UUID Proxmox showed once, at creation
}

// errMalformedToken never quotes its input: the input holds the secret.
var errMalformedToken = errors.New("pve: malformed API token: want USER@REALM!TOKENID=SECRET")

// ParseToken parses USER@REALM!TOKENID=SECRET. A leading "PVEAPIToken="
// (as in an Authorization header) is accepted too.
func ParseToken(s string) (Token, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "PVEAPIToken=")
	id, secret, ok := strings.Cut(s, "=")
	if !ok {
		return Token{}, errMalformedToken
	}
	bang := strings.LastIndexByte(id, '!')
	if bang < 0 {
		return Token{}, errMalformedToken
	}
	userRealm, tokenID := id[:bang], id[bang+1:]
	at := strings.LastIndexByte(userRealm, '@')
	if at < 0 {
		return Token{}, errMalformedToken
	}
	t := Token{User: userRealm[:at], Realm: userRealm[at+1:], TokenID: tokenID, Secret: secret}
	if err := t.validate(); err != nil {
		return Token{}, err
	}
	return t, nil
}

func (t Token) validate() error {
	if t.User == "" || t.Realm == "" || t.TokenID == "" || t.Secret == "" {
		return errMalformedToken
	}
	return nil
}

// ID returns USER@REALM!TOKENID, the token's name without its secret.
// Proxmox records it as the user of the tasks the token starts.
func (t Token) ID() string { return t.User + "@" + t.Realm + "!" + t.TokenID }

// String returns the token's ID; the secret is never shown.
func (t Token) String() string { return t.ID() }

// GoString hides the secret from %#v.
func (t Token) GoString() string {
	return fmt.Sprintf("pve.Token{User:%q, Realm:%q, TokenID:%q, Secret:<redacted>}", t.User, t.Realm, t.TokenID)
}

// Format hides the secret from every verb, including %d and %x, which
// would otherwise print the struct's fields.
func (t Token) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		fmt.Fprint(f, t.GoString())
	case verb == 'q':
		fmt.Fprintf(f, "%q", t.String())
	default:
		fmt.Fprint(f, t.String())
	}
}

// ErrNoToken means neither a token file nor PVE_TOKEN was given.
var ErrNoToken = errors.New("pve: no API token: give a token file or PVE_TOKEN (USER@REALM!TOKENID=SECRET)")

// LoadToken reads the token from file if it is not empty, else parses
// fromEnv, the value of PVE_TOKEN that the caller looked up. A token is
// never taken from a command-line flag, where process listings show it.
// Errors name the file but never quote its content.
func LoadToken(file, fromEnv string) (Token, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return Token{}, fmt.Errorf("pve: reading the API token: %w", err)
		}
		t, err := ParseToken(string(b))
		if err != nil {
			return Token{}, fmt.Errorf("%w (in %s)", err, file)
		}
		return t, nil
	}
	if strings.TrimSpace(fromEnv) == "" {
		return Token{}, ErrNoToken
	}
	return ParseToken(fromEnv)
}
