package pve

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// UPID is the unique ID of a Proxmox VE task, as the API returns it for
// every long-running operation:
//
//	UPID:node:pid:pstart:starttime:type:id:user:
//
// with pid, pstart and starttime in hexadecimal. The zero UPID means
// "no task": older Proxmox versions finish some calls without one.
type UPID struct {
	Node      string
	PID       uint32
	PStart    uint64 // process start, in clock ticks since boot
	StartTime time.Time
	Type      string // e.g. "qmrestore", "qmstart"
	ID        string // usually the VM ID; may be empty
	User      string // e.g. "root@pam!vmatool"

	raw string
}

// ErrBadUPID is returned by ParseUPID for text that is not a UPID.
var ErrBadUPID = errors.New("pve: malformed UPID")

// ParseUPID parses the text form of a task ID.
func ParseUPID(s string) (UPID, error) {
	f := strings.Split(s, ":")
	// Nine fields: the leading "UPID", seven values and the empty field
	// after the trailing colon.
	if len(f) != 9 || f[0] != "UPID" || f[8] != "" {
		return UPID{}, fmt.Errorf("%w: %q", ErrBadUPID, s)
	}
	pid, err1 := strconv.ParseUint(f[2], 16, 32)
	pstart, err2 := strconv.ParseUint(f[3], 16, 64)
	start, err3 := strconv.ParseUint(f[4], 16, 63)
	if err := errors.Join(err1, err2, err3); err != nil || f[1] == "" || f[5] == "" || f[7] == "" {
		return UPID{}, fmt.Errorf("%w: %q", ErrBadUPID, s)
	}
	return UPID{
		Node:      f[1],
		PID:       uint32(pid),
		PStart:    pstart,
		StartTime: time.Unix(int64(start), 0).UTC(),
		Type:      f[5],
		ID:        f[6],
		User:      f[7],
		raw:       s,
	}, nil
}

// String returns the UPID in the form Proxmox uses, byte for byte as it
// was parsed.
func (u UPID) String() string {
	if u.raw != "" || u.IsZero() {
		return u.raw
	}
	return fmt.Sprintf("UPID:%s:%08X:%08X:%08X:%s:%s:%s:",
		u.Node, u.PID, u.PStart, u.StartTime.Unix(), u.Type, u.ID, u.User)
}

// IsZero reports whether u names no task.
func (u UPID) IsZero() bool { return u.raw == "" && u.Node == "" && u.Type == "" }
