// Package budget holds the memory budgets of the project's pipelines in one
// place. Each pipeline sizes its jobs in flight from its budget rather than
// from the core count (see pipeline.Budgeted), so memory stays flat however
// many cores run; and a program can set its soft memory limit from the sum
// of the budgets of what it runs at once, rather than from a guess.
package budget

const (
	// DiskJobs bounds WriteDisk's extent buffers (3.7 MiB each): four keep
	// two cores reading and classifying while a third is written.
	DiskJobs = 4 * (512 + 59*64<<10)

	// ZstdWrite bounds the zstd frames being encoded (input and output of
	// 2 MiB each): five frames keep two cores busy with room to spare.
	ZstdWrite = 5 * 2 * (2 << 20)

	// ZstdRead bounds the independent zstd frames being decoded, at 8 MiB
	// (input and output) for the largest one decoded in parallel: five
	// keep two cores decoding while one frame is read and the consumer
	// holds another (verify and unpack use the decoded frame in place).
	// vmatool's own 2 MiB frames take half of it.
	ZstdRead = 40 << 20

	// Lzop bounds the lzop blocks being decoded (256 KiB in and out).
	Lzop = 8 << 20

	// Qcow2Write bounds the qcow2 writer's cluster jobs in flight.
	Qcow2Write = 24 << 20

	// Overhead is what a pipeline holds besides its jobs: encoder and
	// decoder state, buffered I/O, the runtime, and garbage between
	// collections.
	Overhead = 16 << 20

	// Pack is what packing a disk into a compressed archive holds at once,
	// the largest of the pipelines: the soft memory limit of one pack.
	Pack = DiskJobs + ZstdWrite + Overhead
)
