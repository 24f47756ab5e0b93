package recipe

import (
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/vmatool/vmatool/qcow2"
)

// Option configures Open and OpenDisk.
type Option func(*options) error

type options struct {
	backing qcow2.BackingMode
	chain   func(line string)
	uuid    *uuid.UUID
	ctime   *time.Time
	epoch   *time.Time
	now     time.Time
}

// WithBacking says what to do with a qcow2 image's backing file: follow
// it (qcow2.FollowBacking, the default; only to regular files), leave it
// closed (qcow2.SkipBacking), or refuse the image (qcow2.RefuseBacking).
// A backing file's name comes from the image's header, which may be
// untrusted.
func WithBacking(m qcow2.BackingMode) Option {
	return func(o *options) error {
		switch m {
		case qcow2.FollowBacking, qcow2.SkipBacking, qcow2.RefuseBacking:
			o.backing = m
			return nil
		}
		return fmt.Errorf("recipe: unknown backing mode %d", m)
	}
}

// WithChain has fn called, for each image that has a backing chain, with
// one line that shows the files reads of it will touch (see
// DescribeChain), before anything is read.
func WithChain(fn func(line string)) Option {
	return func(o *options) error { o.chain = fn; return nil }
}

// WithUUID fixes the archive uuid.
func WithUUID(u uuid.UUID) Option {
	return func(o *options) error { o.uuid = &u; return nil }
}

// WithCtime fixes the archive creation time, which must not be before
// 1970 (the header stores seconds since the epoch).
func WithCtime(t time.Time) Option {
	return func(o *options) error {
		if t.Unix() < 0 {
			return &SpecError{Msg: "ctime must not be negative"}
		}
		o.ctime = &t
		return nil
	}
}

// WithSourceDateEpoch makes the archive reproducible, as
// SOURCE_DATE_EPOCH asks of a build: without WithCtime, ctime is t; and
// without WithUUID or WithCtime, the uuid is derived from the configs,
// device names and sizes and ctime, so the same inputs give the same
// archive byte for byte.
func WithSourceDateEpoch(t time.Time) Option {
	return func(o *options) error {
		if t.Unix() < 0 {
			return &SpecError{Msg: "SOURCE_DATE_EPOCH must not be negative"}
		}
		o.epoch = &t
		return nil
	}
}

// WithNow sets the clock reading that is the ctime when nothing else
// fixes it (default: time.Now at Open).
func WithNow(t time.Time) Option {
	return func(o *options) error { o.now = t; return nil }
}

func newOptions(opts []Option) (*options, error) {
	o := &options{backing: qcow2.FollowBacking}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	if o.now.IsZero() {
		o.now = time.Now()
	}
	return o, nil
}
