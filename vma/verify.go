package vma

import (
	"context"
	"io"
)

// DeviceStats sums up one device of a verified archive.
type DeviceStats struct {
	Device
	// StoredBytes counts the 4 KiB blocks the archive stores for the
	// device; the rest of the device reads as zeros.
	StoredBytes int64
}

// Stats is what Verify learned about a complete, valid archive.
type Stats struct {
	Header  *Header
	Devices []DeviceStats
	// ArchiveSize is the uncompressed archive length.
	ArchiveSize int64
	Extents     int64
}

// Verify reads the rest of the archive and checks everything Proxmox's
// "vma verify" checks, plus that every cluster of every device is present
// exactly once (Proxmox's verify passes an archive truncated at an extent
// boundary) and that the header's names can be extracted (Header.CheckNames).
// It refuses exactly what Extract with a target for every device refuses
// (the targets' own write errors aside).
// Only headers carry checksums: data blocks cannot be verified beyond their
// presence and placement.
func Verify(ctx context.Context, r *Reader) (*Stats, error) {
	if r.err != nil {
		return nil, r.err
	}
	if err := r.hdr.CheckNames(); err != nil {
		r.err = err
		return nil, err
	}
	st := &Stats{Header: r.Header()}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// Every byte is read, so a truncated or unreadable archive fails,
		// but the data is not kept: it carries no checksum to compare.
		err := r.next(&r.buf, &r.ext, false)
		if err == io.EOF {
			break
		}
		if err != nil {
			r.err = err
			return nil, err
		}
		st.Extents++
	}
	r.err = io.EOF
	st.ArchiveSize = r.Offset()
	for _, d := range st.Header.Devices {
		st.Devices = append(st.Devices, DeviceStats{Device: d, StoredBytes: r.StoredBytes(d.ID)})
	}
	return st, nil
}
