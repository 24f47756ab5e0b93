// Package qcow2 reads and writes QEMU qcow2 disk images.
//
// Open opens an image by path and New reads one from an io.ReaderAt the
// caller has open, as os.Open and debug/elf.NewFile do. The Image reads
// every image qemu-img makes without a password, byte for byte as
// "qemu-img convert -O raw" would write it: an io.ReaderAt over the
// virtual disk plus an allocation map (Extents, NextData), so a consumer
// can skip holes without reading them. It handles qcow2 versions 2 and 3,
// cluster sizes from 512 bytes to 2 MiB, standard and extended
// (subcluster) L2 tables, deflate and zstd compressed clusters, zero
// clusters, external data files given by the caller, and backing chains
// of qcow2 and raw files.
//
// Reads that span several compressed clusters decompress them on a pool of
// workers (GOMAXPROCS by default, WithWorkers), so a consumer that reads
// in large chunks keeps every core busy.
//
// Images are refused with a *FormatError whose Err is one of the Err*
// values when they are encrypted, use unknown incompatible features, are
// marked corrupt, or hold tables that do not fit the file. Every size the
// file claims is checked before memory is allocated for it, the L1 table
// is read in pages when lookups need them (each image keeps two), and one
// bounded cache holds the L2 tables of a whole backing chain, so hostile
// images and chains cost bounded memory.
//
// A backing file's name comes from the image, which may be untrusted.
// WithBacking can skip or refuse backing files; Image.Backing lists the
// chain that was opened, so that a caller can show it; and the default
// opener, OpenBackingFile, follows only regular files and never waits in
// open(2). Problems with a backing file come as a *BackingError naming the
// image whose header names it.
//
// An Image is immutable after Open apart from its caches, which have their
// own locks: all methods are safe for concurrent use.
//
// NewWriter writes a version 3 image, sparse (clusters of zeros and holes
// are left unallocated, or recorded as zero clusters with
// WithZeroClusters) and optionally compressed with zlib or zstd
// (WithCompression), classifying and compressing clusters on every core;
// the same writes in the same order give the same bytes. Its memory is bounded whatever the
// virtual size.
//
// Options are functional, as in the rest of this module (see package
// vma): Open, New and NewWriter take "With..." options that check their
// own values (a bad one fails with ErrInvalidOption), so calls with the
// defaults stay short and adding an option breaks no caller. Reader and
// writer options are separate types, which is why the writer's workers
// and cache are set with WithWriterWorkers and WithWriterCacheSize.
package qcow2
