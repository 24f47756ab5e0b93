// Package qcow2 reads QEMU qcow2 disk images: every image qemu-img makes
// without a password, byte for byte as "qemu-img convert -O raw" would
// write it.
//
// An Image is an io.ReaderAt over the virtual disk plus an allocation map
// (Extents, NextData), so a consumer can skip holes without reading them.
// It handles qcow2 versions 2 and 3, cluster sizes from 512 bytes to
// 2 MiB, standard and extended (subcluster) L2 tables, deflate and zstd
// compressed clusters, zero clusters, external data files given by the
// caller, and backing chains of qcow2 and raw files.
//
// Reads that span several compressed clusters decompress them on a pool of
// workers (GOMAXPROCS by default), so a consumer that reads in large
// chunks, or uses Reader.WriteTo, keeps every core busy.
//
// Images are refused with a *FormatError whose Err is one of the Err*
// values when they are encrypted, use unknown incompatible features, are
// marked corrupt, or hold tables that do not fit the file. Every size the
// file claims is checked before memory is allocated for it, and the cache of
// L2 tables is bounded, so hostile images cost bounded memory.
//
// An Image is immutable after Open apart from its caches, which have their
// own locks: all methods are safe for concurrent use.
package qcow2
