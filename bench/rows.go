package main

// row is one comparison: a vmatool command against a reference command on
// the same input files. Commands are sh templates (see workspace.expand).
type row struct {
	id      string // for -only and JSON
	name    string
	refName string // short label of the reference
	vmatool string
	ref     string
	inputs  []string
	tools   []string // needed by the reference (or by the row as a whole)
	// scratch lists the files and directories, under the run directory,
	// that the commands create; they are removed before and after each run.
	scratch []string
	// vmaOut and refOut, if set, are scratch entries whose size is reported;
	// alloc says to count allocated blocks rather than the apparent size,
	// for sparse outputs.
	vmaOut, refOut string
	alloc          bool
	// goal is the ratio vmatool/reference an issue asks for (below it, or
	// at most it unless goalStrict), shown for context and never enforced:
	// timings on a shared machine are noise.
	goal       float64
	goalStrict bool
}

func rowTable() []row {
	return []row{
		{
			id: "pack-null", name: "pack raw → .vma to /dev/null", refName: "cat",
			vmatool: "{vmatool} pack -q -o - {img} > /dev/null",
			ref:     "cat {img} > /dev/null",
			inputs:  []string{"img"},
		},
		{
			id: "pack-zst", name: "pack raw → .vma.zst", refName: "zstd -T0 -3 of the .vma",
			vmatool: "{vmatool} pack -q -o {w}/out.vma.zst {img}",
			ref:     "zstd -T0 -3 -q -c {vma} > {w}/ref.vma.zst",
			inputs:  []string{"img", "vma"}, tools: []string{"zstd"},
			scratch: []string{"out.vma.zst", "ref.vma.zst"}, vmaOut: "out.vma.zst", refOut: "ref.vma.zst",
		},
		{
			id: "pack-qcow2-zst", name: "pack qcow2 (zlib) → .vma.zst", refName: "qemu-img convert && zstd",
			vmatool: "{vmatool} pack -q -o {w}/out.vma.zst {qcow2}",
			ref:     "qemu-img convert -O raw {qcow2} {w}/T.raw && zstd -T0 -3 -q {w}/T.raw -o {w}/T.raw.zst",
			inputs:  []string{"qcow2"}, tools: []string{"qemu-img", "zstd"},
			scratch: []string{"out.vma.zst", "T.raw", "T.raw.zst"}, vmaOut: "out.vma.zst", refOut: "T.raw.zst",
		},
		{
			id: "pack-qcow2-plain", name: "pack qcow2 (uncompressed) → .vma", refName: "vmatool pack of the raw",
			vmatool: "{vmatool} pack -q -o {w}/out.vma {qcow2-plain}",
			ref:     "{vmatool} pack -q -o {w}/ref.vma {img}",
			inputs:  []string{"img", "qcow2-plain"},
			scratch: []string{"out.vma", "ref.vma"}, vmaOut: "out.vma", refOut: "ref.vma",
			goal: 1.5,
		},
		{
			id: "verify-vma", name: "verify .vma", refName: "cat",
			vmatool: "{vmatool} verify -q {vma}",
			ref:     "cat {vma} > /dev/null",
			inputs:  []string{"vma"},
		},
		{
			id: "verify-zst", name: "verify .vma.zst (zstd -3, one frame, as vzdump writes)", refName: "zstd -d",
			vmatool: "{vmatool} verify -q {vma.zst}",
			ref:     "zstd -d -q -c {vma.zst} > /dev/null",
			inputs:  []string{"vma.zst"}, tools: []string{"zstd"},
			goal: 1.05,
		},
		{
			id: "verify-zst-ours", name: "verify .vma.zst written by vmatool", refName: "zstd -d",
			vmatool: "{vmatool} verify -q {vma.zst-ours}",
			ref:     "zstd -d -q -c {vma.zst-ours} > /dev/null",
			inputs:  []string{"vma.zst-ours"}, tools: []string{"zstd"},
			goal: 0.6,
		},
		{
			id: "unpack-zst-ours", name: "unpack .vma.zst written by vmatool", refName: "zstd -d",
			vmatool: "{vmatool} unpack -q {vma.zst-ours} {w}/unpacked",
			ref:     "zstd -d -q -c {vma.zst-ours} > /dev/null",
			inputs:  []string{"vma.zst-ours"}, tools: []string{"zstd"},
			scratch: []string{"unpacked"},
			goal:    0.6,
		},
		{
			id: "verify-lzo", name: "verify .vma.lzo", refName: "lzop -dc",
			vmatool: "{vmatool} verify -q {vma.lzo}",
			ref:     "lzop -dc {vma.lzo} > /dev/null",
			inputs:  []string{"vma.lzo"}, tools: []string{"lzop"},
			goal: 1.2,
		},
		{
			id: "unpack", name: "unpack .vma → sparse raw", refName: "cp --sparse=always",
			vmatool: "{vmatool} unpack -q {vma} {w}/unpacked",
			ref:     "cp --sparse=always {img} {w}/copy.raw",
			inputs:  []string{"img", "vma"},
			scratch: []string{"unpacked", "copy.raw"}, vmaOut: "unpacked", refOut: "copy.raw", alloc: true,
		},
		{
			id: "pack-sparse", name: "pack {sparseSize} sparse raw holding {sparseData}", refName: "vmatool pack of a dense {sparseData} raw",
			vmatool: "{vmatool} pack -q -o - {sparse} > /dev/null",
			ref:     "{vmatool} pack -q -o - {dense} > /dev/null",
			inputs:  []string{"sparse", "dense"},
		},
		{
			id: "pack-sparse-spread", name: "pack {sparseSize} sparse raw holding {sparseData} in 1 MiB runs spread over it", refName: "vmatool pack of a dense {sparseData} raw",
			vmatool: "{vmatool} pack -q -o - {sparse-spread} > /dev/null",
			ref:     "{vmatool} pack -q -o - {dense} > /dev/null",
			inputs:  []string{"sparse-spread", "dense"},
			goal:    1.5,
		},
		{
			// Memory must not grow with the core count: the same job with
			// GOMAXPROCS=16 against GOMAXPROCS=2 (compare the peak RSS).
			id: "pack-zst-16", name: "pack raw → .vma.zst at GOMAXPROCS=16", refName: "the same at GOMAXPROCS=2",
			vmatool: "GOMAXPROCS=16 {vmatool} pack -q -o {w}/out16.vma.zst {img}",
			ref:     "GOMAXPROCS=2 {vmatool} pack -q -o {w}/out2.vma.zst {img}",
			inputs:  []string{"img"},
			scratch: []string{"out16.vma.zst", "out2.vma.zst"}, vmaOut: "out16.vma.zst", refOut: "out2.vma.zst",
		},
		{
			// The same for decoding: unpack holds decoded frames in flight,
			// sized by the budget, not by the core count.
			id: "unpack-zst-16", name: "unpack .vma.zst written by vmatool at GOMAXPROCS=16", refName: "the same at GOMAXPROCS=2",
			vmatool: "GOMAXPROCS=16 {vmatool} unpack -q {vma.zst-ours} {w}/u16",
			ref:     "GOMAXPROCS=2 {vmatool} unpack -q {vma.zst-ours} {w}/u2",
			inputs:  []string{"vma.zst-ours"},
			scratch: []string{"u16", "u2"},
		},
		{
			id: "convert-vma-qcow2", name: "convert .vma.zst → qcow2 (zstd)", refName: "unpack && qemu-img convert -c",
			vmatool: "{vmatool} convert -q -c -d scsi0 {vma.zst} {w}/out.qcow2",
			ref:     "{vmatool} unpack -q {vma.zst} {w}/u && qemu-img convert -c -O qcow2 -o compression_type=zstd {w}/u/disk-drive-scsi0.raw {w}/ref.qcow2",
			inputs:  []string{"vma.zst"}, tools: []string{"qemu-img", "zstd"},
			scratch: []string{"out.qcow2", "u", "ref.qcow2"}, vmaOut: "out.qcow2", refOut: "ref.qcow2",
			goal: 0.5,
		},
		{
			id: "convert-raw-qcow2", name: "convert raw → qcow2 (zstd)", refName: "qemu-img convert -c",
			vmatool: "{vmatool} convert -q -c {img} {w}/out.qcow2",
			ref:     "qemu-img convert -c -O qcow2 -o compression_type=zstd {img} {w}/ref.qcow2",
			inputs:  []string{"img"}, tools: []string{"qemu-img"},
			scratch: []string{"out.qcow2", "ref.qcow2"}, vmaOut: "out.qcow2", refOut: "ref.qcow2",
			goal: 0.6,
		},
		{
			id: "qcow2-decode", name: "pack qcow2 (zlib) → .vma", refName: "qemu-img convert -O raw",
			vmatool: "{vmatool} pack -q -o {w}/T.vma {qcow2}",
			ref:     "qemu-img convert -O raw {qcow2} {w}/T.raw",
			inputs:  []string{"qcow2"}, tools: []string{"qemu-img"},
			scratch: []string{"T.raw", "T.vma"},
			goal:    1, goalStrict: true,
		},
	}
}
