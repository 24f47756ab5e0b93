// Package recipe is how vmatool turns disk images into a Proxmox VE backup
// archive, in one place for every command and for deploy: which file is
// what (a qcow2 image, a raw image, or a VMA archive, compressed or not,
// told by content and never by name), how images and their backing chains
// are opened, which configs go in and which #qmdump#map lines they get,
// what the archive is called, and which uuid and ctime it carries.
//
// Open checks everything that can be checked before a byte is written:
// every disk opens, every name and size fits the format, every config is
// valid. The Pack it returns writes the archive with WriteArchive, which
// reads each disk once on the vma package's pipeline (holes are never
// read) and compresses on every core.
//
// The package reads no environment variable and prints nothing: the
// caller passes SOURCE_DATE_EPOCH as an option, and receives the lines
// worth showing (a backing chain) through a callback.
package recipe
