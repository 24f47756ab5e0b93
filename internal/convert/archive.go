package convert

import (
	"context"
	"fmt"
	"io"

	"github.com/vmatool/vmatool/vma"
)

// Sink receives the clusters of one archive device, in the order the
// archive holds them.
type Sink interface {
	// Cluster takes cluster c of the device; n is its length in bytes,
	// ClusterSize except for a device's last cluster. c and its data are
	// valid only during the call.
	Cluster(c *vma.Cluster, n int) error
}

// FromArchive reads the rest of r and hands every cluster of each device
// that has a sink in sinks (keyed by dev_id) to it; the other devices are
// read past. It returns nil at the end of the archive: with a Reader made
// WithSalvage, Reader.Missing then lists what never arrived. It neither
// flushes nor closes the sinks.
func FromArchive(ctx context.Context, r *vma.Reader, sinks map[int]Sink) error {
	h := r.Header()
	sizes := map[int]int64{}
	for _, d := range h.Devices {
		if _, ok := sinks[d.ID]; !ok {
			if err := r.SkipDevice(d.ID); err != nil {
				return err
			}
			continue
		}
		sizes[d.ID] = d.Size
	}
	for id := range sinks {
		if _, ok := sizes[id]; !ok {
			return fmt.Errorf("convert: no device with dev_id %d in the archive: %w", id, vma.ErrUnknownDevice)
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ext, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		for i := range ext.Clusters {
			c := &ext.Clusters[i]
			n := int(min(vma.ClusterSize, sizes[c.Device]-int64(c.Index)*vma.ClusterSize))
			if err := sinks[c.Device].Cluster(c, n); err != nil {
				return err
			}
		}
	}
}

// expand writes the first len(dst) bytes of cluster c into dst: its
// stored blocks, and zeros for the others.
func expand(dst []byte, c *vma.Cluster) {
	if c.Mask == 0xffff && len(c.Data) >= len(dst) {
		copy(dst, c.Data)
		return
	}
	for b := 0; b*vma.BlockSize < len(dst); b++ {
		d := dst[b*vma.BlockSize : min((b+1)*vma.BlockSize, len(dst))]
		if blk := c.Block(b); blk != nil {
			copy(d, blk)
		} else {
			clear(d)
		}
	}
}
