package convert

import (
	"errors"
	"fmt"
	"slices"

	"github.com/vmatool/vmatool/vma"
)

// ClusterWriter is the part of qcow2.Writer a Qcow2Sink uses: whole
// clusters, each written once, in any order.
type ClusterWriter interface {
	WriteAt(p []byte, off int64) (int, error)
	ClusterSize() int64
}

// runBytes is how much a Qcow2Sink gathers before a write: the qcow2
// writer's job size, so that each write fills one job of its pipeline.
const runBytes = 1 << 20

// DefaultAssembly is how much cluster data a Qcow2Sink may hold while
// image clusters larger than the archive's wait for the rest of their
// pieces. An archive in disk order needs one image cluster's worth.
const DefaultAssembly = 32 << 20

// partCost is what a waiting image cluster costs beside its data.
const partCost = 64

// ErrScattered means an archive's clusters came so far out of order that
// the image clusters waiting for their other pieces would need more memory
// than the assembly budget: a smaller image cluster size (64 KiB, the
// archive's, needs none) avoids it.
var ErrScattered = errors.New("archive clusters too far out of order for the image cluster size")

// Qcow2Sink writes a device's archive clusters to a qcow2 writer. With
// image clusters of 64 KiB or less, each archive cluster is whole image
// clusters: consecutive ones are gathered into runs of up to 1 MiB, and
// clusters of zeros are left unallocated. Larger image clusters span
// several archive clusters, which may arrive apart: their pieces wait,
// within a budget, until the last one comes.
type Qcow2Sink struct {
	w      ClusterWriter
	size   int64
	cs     int64
	run    []byte
	runOff int64

	parts  map[int64]*part // waiting image clusters, by index
	held   int64           // their bytes
	budget int64
	free   [][]byte // piece buffers, ClusterSize each
	whole  []byte   // one image cluster, for assembly
}

// part is an image cluster waiting for archive clusters.
type part struct {
	left   int // archive clusters still to come
	pieces []piece
}

type piece struct {
	off  int64 // in the image cluster
	data []byte
}

// NewQcow2Sink returns a sink that writes a device of size bytes to w.
// budget bounds the bytes of waiting pieces (0 means DefaultAssembly).
func NewQcow2Sink(w ClusterWriter, size, budget int64) *Qcow2Sink {
	if budget <= 0 {
		budget = DefaultAssembly
	}
	return &Qcow2Sink{w: w, size: size, cs: w.ClusterSize(), budget: budget, parts: map[int64]*part{}}
}

// Cluster implements Sink.
func (s *Qcow2Sink) Cluster(c *vma.Cluster, n int) error {
	off := int64(c.Index) * vma.ClusterSize
	if s.cs <= vma.ClusterSize {
		if c.Mask == 0 {
			return s.flushRun()
		}
		if len(s.run) > 0 && (off != s.runOff+int64(len(s.run)) || len(s.run)+n > runBytes) {
			if err := s.flushRun(); err != nil {
				return err
			}
		}
		if s.run == nil {
			s.run = make([]byte, 0, runBytes)
		}
		if len(s.run) == 0 {
			s.runOff = off
		}
		k := len(s.run)
		s.run = s.run[:k+n]
		expand(s.run[k:], c)
		return nil
	}
	k := off / s.cs
	p := s.parts[k]
	if p == nil {
		start := k * s.cs
		end := min(start+s.cs, s.size)
		p = &part{left: int((end - start + vma.ClusterSize - 1) / vma.ClusterSize)}
		s.parts[k] = p
		s.held += partCost
	}
	p.left--
	if c.Mask != 0 {
		s.held += int64(n)
		if s.held > s.budget {
			return fmt.Errorf("convert: cluster %d arrived with %d MiB of %d-byte image clusters waiting for other pieces, over the %d MiB budget: %w",
				c.Index, s.held>>20, s.cs, s.budget>>20, ErrScattered)
		}
		d := s.piece()[:n]
		expand(d, c)
		p.pieces = append(p.pieces, piece{off - k*s.cs, d})
	}
	if p.left > 0 {
		return nil
	}
	delete(s.parts, k)
	return s.writePart(k, p)
}

func (s *Qcow2Sink) piece() []byte {
	if n := len(s.free); n > 0 {
		b := s.free[n-1]
		s.free = s.free[:n-1]
		return b
	}
	return make([]byte, vma.ClusterSize)
}

// writePart writes image cluster k from its pieces; the parts that never
// came read as zeros. A cluster with no data is left unallocated.
func (s *Qcow2Sink) writePart(k int64, p *part) error {
	s.held -= partCost
	if len(p.pieces) == 0 {
		return nil
	}
	if s.whole == nil {
		s.whole = make([]byte, s.cs)
	}
	start := k * s.cs
	b := s.whole[:min(s.cs, s.size-start)]
	clear(b)
	for _, pc := range p.pieces {
		copy(b[pc.off:], pc.data)
		s.held -= int64(len(pc.data))
		s.free = append(s.free, pc.data[:cap(pc.data)])
	}
	_, err := s.w.WriteAt(b, start)
	return err
}

func (s *Qcow2Sink) flushRun() error {
	if len(s.run) == 0 {
		return nil
	}
	_, err := s.w.WriteAt(s.run, s.runOff)
	s.run = s.run[:0]
	return err
}

// Flush writes what the sink still holds: the last run, and image
// clusters still waiting for pieces, which only an incomplete (salvaged)
// archive leaves. Call it once the archive has ended, before closing the
// writer.
func (s *Qcow2Sink) Flush() error {
	if err := s.flushRun(); err != nil {
		return err
	}
	keys := make([]int64, 0, len(s.parts))
	for k := range s.parts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p := s.parts[k]
		delete(s.parts, k)
		if err := s.writePart(k, p); err != nil {
			return err
		}
	}
	return nil
}
