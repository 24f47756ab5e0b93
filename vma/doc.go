// Package vma reads and writes Proxmox VE backup archives (VMA).
//
// A VMA archive is a header (configs, device names and sizes) followed by
// extents of up to 59 64 KiB clusters, each cluster carrying a 16-bit mask of
// the 4 KiB blocks it stores; zero blocks are left out. Only the headers carry
// MD5 checksums. The layout here follows Proxmox's own reader and writer
// byte for byte, so archives written by this package restore with qmrestore
// and are identical to those of Proxmox's "vma create" for the same inputs.
//
// Reader streams: it never seeks, so it works on a pipe from a decompressor.
// Extract and Verify build the common jobs on it. Writer writes strictly
// sequentially: WriteDisk packs a whole Disk (holes of a SparseDisk are
// never read) on a pipeline of workers, WriteCluster takes clusters one at
// a time. VMA has no compression of its own; Decompress and Compress wrap
// an archive stream in the compressions vzdump uses, told apart by content.
//
// Options are functional everywhere in this module (vma, qcow2, raw):
// NewReader, NewWriter, Extract, Compress and Decompress take "With..."
// options. A call with the defaults stays short, each option checks its
// own value and says what was wrong, and adding an option breaks no
// caller, which a struct of options with meaningful zero values cannot
// all promise.
package vma
