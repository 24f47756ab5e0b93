// Package raw opens raw disk images and block devices as disks for the VMA
// writer.
//
// Open opens an image or block device by path, and New wraps an *os.File
// the caller has open, as in packages qcow2 and os. Neither needs options.
//
// A *Disk is an io.ReaderAt with a size, plus NextData, which reports where
// data may be so that callers never read a file's holes: a 100 GiB sparse
// image with 2 GiB written costs 2 GiB of reads. Holes come from the
// filesystem: through lseek(SEEK_DATA/SEEK_HOLE) on Linux and macOS, and
// FSCTL_QUERY_ALLOCATED_RANGES on Windows (where only files marked sparse
// have holes). Where that is unavailable (block devices, other systems,
// filesystems without sparse files) the whole disk counts as data, which is
// slower but never wrong.
//
// The package knows nothing about the archive format; *Disk satisfies the
// vma package's SparseDisk interface by shape alone.
package raw
