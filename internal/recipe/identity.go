package recipe

import (
	"crypto/sha256"
	"encoding/binary"
	"time"

	"github.com/google/uuid"
)

// uuidNamespace scopes uuids derived from archive inputs.
var uuidNamespace = uuid.MustParse("8f1f6c1e-3b0e-4c55-9a51-6f1b0e7e2a10")

// identify picks ctime and uuid: the options that fix them first, then the
// source date epoch (the uuid derived from the inputs), then the clock and
// a random uuid. Deriving the uuid is what the source date epoch asks
// for; a ctime fixed by hand overrides that request, so the uuid is then
// random unless it is fixed too.
func (p *Pack) identify(o *options) {
	switch {
	case o.ctime != nil:
		p.Ctime = *o.ctime
	case o.epoch != nil:
		p.Ctime = *o.epoch
	default:
		p.Ctime = o.now
	}
	p.Ctime = p.Ctime.Truncate(time.Second)
	switch {
	case o.uuid != nil:
		p.UUID = *o.uuid
	case o.epoch != nil && o.ctime == nil:
		p.UUID = p.derivedUUID()
	default:
		p.UUID = uuid.New()
	}
}

// derivedUUID hashes what goes into the header. Disk contents are not read
// for it: the header is written before the data.
func (p *Pack) derivedUUID() uuid.UUID {
	h := sha256.New()
	field := func(b []byte) {
		binary.Write(h, binary.BigEndian, uint64(len(b)))
		h.Write(b)
	}
	binary.Write(h, binary.BigEndian, p.Ctime.Unix())
	for _, c := range p.Configs {
		field([]byte(c.Name))
		field(c.Data)
	}
	for _, d := range p.Devices {
		field([]byte(d.Name))
		binary.Write(h, binary.BigEndian, d.Disk.Size())
	}
	return uuid.NewSHA1(uuidNamespace, h.Sum(nil))
}
