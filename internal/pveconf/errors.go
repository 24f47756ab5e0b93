package pveconf

import (
	"errors"
	"fmt"
	"regexp"
)

// ErrInvalid is a VM setting Proxmox would refuse, or one that would break
// the line-oriented config format. Every *OptionError matches it.
var ErrInvalid = errors.New("pveconf: invalid VM setting")

// OptionError is a refused value and the setting it was given for.
type OptionError struct {
	// Option is the config key the value belongs to ("memory", "net1",
	// "efidisk0", "scsi2"), or "storage" or "vmid", which are no config
	// key but still name what was wrong. A drive or net key that is itself
	// wrong is the Value of Option "disk" or "net": Option is never input,
	// so it needs no quoting.
	Option string
	// Value is the value as given.
	Value string
	// Reason says what Proxmox wants instead.
	Reason string
}

func (e *OptionError) Error() string {
	// %q keeps a value with a line break on one line of output.
	return fmt.Sprintf("%s %q: %s", e.Option, e.Value, e.Reason)
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *OptionError) Is(target error) bool { return target == ErrInvalid }

func optionErrorf(option, value, format string, args ...any) error {
	return &OptionError{Option: option, Value: value, Reason: fmt.Sprintf(format, args...)}
}

// storageID is pve-common's parse_id for storage ids (src/PVE/JSONSchema.pm),
// which pve-storage's parse_volume_id uses too: case-insensitive, at least
// two characters.
var storageID = regexp.MustCompile(`^(?i:[a-z][a-z0-9._-]*[a-z0-9])$`)

// ValidateStorage accepts a storage id as Proxmox does: a letter, then
// letters, digits, '-', '_' or '.', ending in a letter or digit. Anything
// else could not name a storage, and a ':' or a line break would change
// what a drive or #qmdump#map line says.
func ValidateStorage(id string) error {
	if !storageID.MatchString(id) {
		return optionErrorf("storage", id, "a storage id is a letter, then letters, digits, '-', '_' or '.', ending in a letter or digit")
	}
	return nil
}
