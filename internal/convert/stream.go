package convert

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/vmatool/vmatool/vma"
)

// DefaultWindow is how far ahead of the next byte to write a StreamSink
// holds clusters. Proxmox writes a device nearly in order (clusters that
// the guest was about to overwrite come early), well within it.
const DefaultWindow = 64 << 20

// ErrReorderWindow means a cluster arrived further ahead of the stream's
// position than the reorder window reaches: the archive is too far out of
// order to be streamed, and must be converted to a file instead.
var ErrReorderWindow = errors.New("archive too far out of order for the reorder window")

// streamBuffer is the write buffer of a StreamSink: clusters go out in
// large writes.
const streamBuffer = 1 << 20

var zeroCluster [vma.ClusterSize]byte

// StreamSink writes a device to a stream in disk order, zero clusters as
// zeros. Clusters that arrive early wait in a window of a fixed size
// (memory is at most the window); one that arrives further ahead fails
// with ErrReorderWindow, unless the sink was made to give up: then the
// clusters it still waits for are written as zeros to make room, and any
// that arrive later are lost (Lost lists them). Giving up suits salvage,
// where a cluster being waited for may never come.
type StreamSink struct {
	w       *bufio.Writer
	size    int64
	n       int64 // clusters
	next    int64 // the next cluster to write
	slots   []streamSlot
	free    [][]byte
	giveUp  bool
	lost    [][2]int64
	written int64
}

type streamSlot struct {
	here bool
	data []byte // nil: zeros
}

// NewStreamSink returns a sink that writes a device of size bytes to w,
// holding clusters up to window bytes (rounded down to whole clusters, at
// least one) ahead of the next one to write.
func NewStreamSink(w io.Writer, size, window int64, giveUp bool) *StreamSink {
	slots := max(window/vma.ClusterSize, 1)
	return &StreamSink{
		w: bufio.NewWriterSize(w, streamBuffer), size: size,
		n:     (size + vma.ClusterSize - 1) / vma.ClusterSize,
		slots: make([]streamSlot, slots), giveUp: giveUp,
	}
}

// Cluster implements Sink.
func (s *StreamSink) Cluster(c *vma.Cluster, n int) error {
	i := int64(c.Index)
	if i < s.next {
		// Only a cluster given up on comes after its place was written.
		if c.Mask != 0 {
			s.addLost(i*vma.ClusterSize, int64(n))
		}
		return nil
	}
	w := int64(len(s.slots))
	if i-s.next >= w {
		if !s.giveUp {
			return fmt.Errorf("convert: cluster %d (offset %d) arrived while cluster %d (offset %d) was still to come, %d MiB ahead of it and beyond the %d MiB reorder window: %w",
				i, i*vma.ClusterSize, s.next, s.next*vma.ClusterSize, (i-s.next)*vma.ClusterSize>>20, w*vma.ClusterSize>>20, ErrReorderWindow)
		}
		for i-s.next >= w {
			if err := s.emit(); err != nil {
				return err
			}
		}
	}
	if i == s.next {
		var err error
		switch {
		case c.Mask == 0:
			err = s.write(nil, n)
		case c.Mask == 0xffff:
			err = s.write(c.Data[:n], n)
		default:
			b := s.buffer()[:n]
			expand(b, c)
			err = s.write(b, n)
			s.free = append(s.free, b[:cap(b)])
		}
		if err != nil {
			return err
		}
		s.next++
		return s.drain()
	}
	sl := &s.slots[i%w]
	sl.here = true
	if c.Mask != 0 {
		sl.data = s.buffer()[:n]
		expand(sl.data, c)
	}
	return nil
}

func (s *StreamSink) buffer() []byte {
	if k := len(s.free); k > 0 {
		b := s.free[k-1]
		s.free = s.free[:k-1]
		return b
	}
	return make([]byte, vma.ClusterSize)
}

// drain writes the clusters that wait at the stream's position.
func (s *StreamSink) drain() error {
	for s.next < s.n && s.slots[s.next%int64(len(s.slots))].here {
		if err := s.emit(); err != nil {
			return err
		}
	}
	return nil
}

// emit writes the next cluster: what arrived for it, or zeros.
func (s *StreamSink) emit() error {
	sl := &s.slots[s.next%int64(len(s.slots))]
	n := int(min(vma.ClusterSize, s.size-s.next*vma.ClusterSize))
	err := s.write(sl.data, n)
	if sl.data != nil {
		s.free = append(s.free, sl.data[:cap(sl.data)])
	}
	*sl = streamSlot{}
	s.next++
	return err
}

func (s *StreamSink) write(b []byte, n int) error {
	if b == nil {
		b = zeroCluster[:n]
	}
	_, err := s.w.Write(b)
	s.written += int64(len(b))
	return err
}

func (s *StreamSink) addLost(off, n int64) {
	if k := len(s.lost); k > 0 && s.lost[k-1][0]+s.lost[k-1][1] == off {
		s.lost[k-1][1] += n
		return
	}
	s.lost = append(s.lost, [2]int64{off, n})
}

// Close writes the rest of the device, zeros for the clusters that never
// came (only an incomplete, salvaged archive lacks any), and flushes. It
// does not close the stream.
func (s *StreamSink) Close() error {
	for s.next < s.n {
		if err := s.emit(); err != nil {
			return err
		}
	}
	return s.w.Flush()
}

// Written returns the bytes written to the stream so far.
func (s *StreamSink) Written() int64 { return s.written }

// Lost returns the ranges (offset, length) of clusters that arrived after
// the sink had given up on them and written zeros in their place. Only a
// sink made to give up loses any.
func (s *StreamSink) Lost() [][2]int64 { return s.lost }
