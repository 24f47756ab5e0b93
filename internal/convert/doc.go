// Package convert copies disks between the forms vmatool reads and
// writes: the devices of an archive into images or a stream, and an image
// into another image or a stream.
//
// An archive delivers clusters in the order its writer stored them, which
// for Proxmox's backups is nearly but not quite disk order. FromArchive
// hands each cluster to a Sink for its device: Qcow2Sink gathers them into
// the whole-cluster writes a qcow2.Writer takes, in any order; StreamSink
// puts them back in disk order within a bounded window, for a pipe.
// Images (anything with ReadAt, Size and, to skip holes, NextData) go to a
// sparse file with SparseCopy or to a pipe with StreamCopy; to qcow2 they
// go through qcow2.Writer.WriteFrom, which needs nothing from here.
//
// Memory is bounded whatever the disk size: by the reorder window of a
// StreamSink, the assembly budget of a Qcow2Sink and the chunks in flight
// of a copy.
package convert
