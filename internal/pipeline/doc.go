// Package pipeline is the one ordered-parallel engine of the project: jobs
// are worked on by several goroutines and delivered in the order they were
// submitted, with a bounded number in flight, buffers recycled, and the
// first error cancelling the rest.
//
// Pack's block classification, zstd frame encoding, the parallel decoders
// and the qcow2 writer's cluster compression all have this shape: a
// producer that must stay sequential (reading a stream, walking a disk in
// order), work that is independent per job (classify, compress,
// decompress), and a consumer that must see results in order (an archive
// is a sequence). ForEach covers the remaining shape, a batch of
// independent jobs whose results land in place (qcow2 cluster reads).
package pipeline
