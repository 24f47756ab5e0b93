package qcow2

import "encoding/binary"

// finish writes what Close adds after the last cluster: the L2 tables still
// in memory, the L1 table, the refcounts, and last of all the header, so
// that the file becomes an image only when everything it points to is
// written.
func (w *Writer) finish() error {
	l1Off, err := w.finishTables()
	if err != nil {
		return err
	}
	refOff, refClusters, err := w.space.finish()
	if err != nil {
		return err
	}
	var h [512]byte
	be := binary.BigEndian
	be.PutUint32(h[offMagic:], magic)
	be.PutUint32(h[offVersion:], 3)
	be.PutUint32(h[offClusterBits:], uint32(w.cbits))
	be.PutUint64(h[offSize:], uint64(w.size))
	be.PutUint32(h[offL1Size:], uint32(len(w.tables.l1)))
	be.PutUint64(h[offL1Offset:], uint64(l1Off))
	be.PutUint64(h[offRefcountOffset:], uint64(refOff))
	be.PutUint32(h[offRefcountClusters:], uint32(refClusters))
	if w.compression == CompressionZstd {
		be.PutUint64(h[offIncompatible:], incompatCompression)
	}
	be.PutUint32(h[offRefcountOrder:], refcountOrder16)
	be.PutUint32(h[offHeaderLength:], writerHeaderLen)
	h[offCompressionType] = byte(w.compression)
	// The header extensions that follow are none: their end marker is
	// the zeros after the header.
	return w.space.writeFile(h[:], 0)
}
