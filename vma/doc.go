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
// Writer writes strictly sequentially. Pack, Extract and Verify build the
// common jobs on top of them.
package vma
