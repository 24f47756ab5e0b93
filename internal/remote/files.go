package remote

import (
	"bytes"
	"context"
	"fmt"
	"strings"
)

// Remove deletes the file at path on the remote host. A file that does not
// exist is not an error.
func (c *Client) Remove(ctx context.Context, path string) error {
	return c.Run(ctx, []string{"rm", "-f", "--", path}, nil, nil, nil)
}

// Exists reports whether path exists on the remote host (a dangling
// symbolic link counts as existing, since it would block a rename).
func (c *Client) Exists(ctx context.Context, path string) (bool, error) {
	const script = `if [ -e "$1" ] || [ -L "$1" ]; then echo yes; else echo no; fi`
	var out bytes.Buffer
	if err := c.Run(ctx, []string{"sh", "-c", script, "exists", path}, nil, &out, nil); err != nil {
		return false, err
	}
	switch strings.TrimSpace(out.String()) {
	case "yes":
		return true, nil
	case "no":
		return false, nil
	}
	return false, fmt.Errorf("remote: exists %s: unexpected answer %q", path, out.String())
}

// Hostname returns the remote host's short name: uname -n up to the first
// dot, which is how Proxmox VE derives its node name.
func (c *Client) Hostname(ctx context.Context) (string, error) {
	var out bytes.Buffer
	if err := c.Run(ctx, []string{"uname", "-n"}, nil, &out, nil); err != nil {
		return "", err
	}
	name, _, _ := strings.Cut(strings.TrimSpace(out.String()), ".")
	if name == "" {
		return "", fmt.Errorf("remote: uname -n printed nothing")
	}
	return name, nil
}
