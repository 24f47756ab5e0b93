package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
)

// runSize is the unit in which the generator picks content. Real
// filesystems allocate in extents of about this size, and at 1 MiB every
// kind of run spans whole 64 KiB VMA clusters, so each run exercises one
// path of the packer (copy, zero elision or hole skipping).
const runSize = 1 << 20

// Image kinds the generator makes.
const (
	kindMixed      = "mixed"       // random, text, written zeros and holes, like a used system disk
	kindDense      = "dense"       // mixed without holes: every byte is in the file
	kindSparse     = "sparse"      // nothing but a hole
	kindSparseData = "sparse-data" // a huge hole holding a little dense data in a few places
)

var imageKinds = []string{kindMixed, kindDense, kindSparse, kindSparseData}

type runKind int

const (
	runRandom runKind = iota // incompressible: compressed files, binaries, encrypted data
	runText                  // compressible: logs, configs, store path lists
	runZeros                 // zeros written out: occupy space, but VMA stores no block of them
	runHole                  // never written: the file stays sparse there
)

// The mix of a mixed image, in percent, from the shape of a NixOS VM disk:
// a third incompressible, a third text, free space that is partly holes
// and partly zeros the filesystem once wrote.
const (
	pctRandom = 30
	pctText   = 35
	pctZeros  = 10
	pctHoles  = 25
)

// genSpec describes one image. The same spec always gives the same bytes,
// on any machine and Go version: the RNGs (PCG, ChaCha8) are specified
// algorithms, and the content of the first N bytes does not depend on Size.
type genSpec struct {
	Kind string
	Size int64
	Data int64 // sparse-data only: bytes of data in the hole
	// Pieces is how many runs of data the hole holds (sparse-data only);
	// 0 means up to 8, each Data/8 long.
	Pieces int64
	Seed   uint64
}

func (s genSpec) validate() error {
	switch s.Kind {
	case kindMixed, kindDense, kindSparse:
	case kindSparseData:
		if s.Data <= 0 || s.Data > s.Size {
			return fmt.Errorf("sparse-data needs 0 < data (%d) <= size (%d)", s.Data, s.Size)
		}
	default:
		return fmt.Errorf("unknown image kind %q (want one of %v)", s.Kind, imageKinds)
	}
	if s.Size <= 0 {
		return fmt.Errorf("image size must be positive")
	}
	return nil
}

// generate writes the image to path, replacing any file there.
func generate(path string, s genSpec) error {
	if err := s.validate(); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	err = writeImage(f, s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("generating %s: %w", path, err)
	}
	return nil
}

func writeImage(f *os.File, s genSpec) error {
	switch s.Kind {
	case kindMixed:
		if err := newContent(s.Seed, true).writeTo(f, s.Size); err != nil {
			return err
		}
	case kindDense:
		if err := newContent(s.Seed, false).writeTo(f, s.Size); err != nil {
			return err
		}
	case kindSparseData:
		if err := writeSparseData(f, s); err != nil {
			return err
		}
	}
	// Sizes the file and leaves any tail the content skipped as a hole.
	return f.Truncate(s.Size)
}

// writeSparseData places the bytes of a dense image of size s.Data in a
// few pieces spread over the hole: at the start (where partition tables and
// boot code are), at the end (backup GPT) and evenly between. A dense image
// of the same seed and size s.Data holds exactly the same bytes, so the two
// differ only in the hole.
func writeSparseData(f *os.File, s genSpec) error {
	pieces := min(8, max(1, s.Data/runSize))
	if s.Pieces > 0 {
		pieces = min(s.Pieces, max(1, s.Data/runSize))
	}
	piece := (s.Data/pieces + runSize - 1) / runSize * runSize
	c := newContent(s.Seed, false)
	left := s.Data
	for i := range pieces {
		off := int64(0)
		if pieces > 1 {
			off = i * (s.Size - piece) / (pieces - 1) / runSize * runSize
		}
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return err
		}
		n := min(piece, left)
		if err := c.writeTo(f, n); err != nil {
			return err
		}
		left -= n
	}
	return nil
}

// content is the stream of 1 MiB runs an image is made of. The layout,
// the random bytes and the text each have their own RNG stream, so a change
// to one kind of content does not move the others.
type content struct {
	layout *rand.Rand
	random *rand.ChaCha8
	text   *textSource
	holes  bool
	buf    []byte
	zeros  []byte
}

func newContent(seed uint64, holes bool) *content {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	copy(key[8:], "vmatool-bench-random")
	return &content{
		layout: rand.New(rand.NewPCG(seed, 0x6c61796f7574)),
		random: rand.NewChaCha8(key),
		text:   newTextSource(seed),
		holes:  holes,
		buf:    make([]byte, runSize),
		zeros:  make([]byte, runSize),
	}
}

// next picks the kind of the next run. Without holes, their share goes to
// the other kinds in proportion, so a dense image is the mixed mix minus
// the free space that was never written.
func (c *content) next() runKind {
	span := 100
	if !c.holes {
		span -= pctHoles
	}
	switch v := c.layout.IntN(span); {
	case v < pctRandom:
		return runRandom
	case v < pctRandom+pctText:
		return runText
	case v < pctRandom+pctText+pctZeros:
		return runZeros
	default:
		return runHole
	}
}

// writeTo writes n bytes of runs at f's current offset; holes move the
// offset without writing.
func (c *content) writeTo(f *os.File, n int64) error {
	for n > 0 {
		m := min(n, runSize)
		var p []byte
		switch c.next() {
		case runRandom:
			p = c.buf[:m]
			c.random.Read(p)
		case runText:
			p = c.buf[:m]
			c.text.fill(p)
		case runZeros:
			p = c.zeros[:m]
		case runHole:
			if _, err := f.Seek(m, io.SeekCurrent); err != nil {
				return err
			}
		}
		if p != nil {
			if _, err := f.Write(p); err != nil {
				return err
			}
		}
		n -= m
	}
	return nil
}
