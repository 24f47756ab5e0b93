package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/vmatool/vmatool/internal/recipe"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/vmatool/vmatool/internal/convert"
	"github.com/vmatool/vmatool/vma"
)

const convertHelp = `Usage: vmatool convert [options] SRC DST

Converts, like "qemu-img convert", between the formats vmatool knows:

  archive -> images   each disk of a VMA archive (.vma, .vma.zst, .vma.gz,
                      .vma.lzo, or - for standard input) becomes an image.
                      DST is a folder, which gets disk-<devname>.qcow2 (or
                      .raw) for each disk; configs and the VM state are not
                      written (unpack writes everything). With -d DEVICE
                      (unless DST is a folder), or when DST ends in
                      .qcow2, .raw or .img and the archive has one disk,
                      DST is that one image.
  image -> image      a raw or qcow2 image becomes a qcow2 or raw image:
                      zero blocks become holes (raw) or unallocated
                      clusters (qcow2), qcow2 output can be compressed and
                      take another cluster size. Holes of the source are
                      never read.
  image -> archive    DST ending in .vma, .vma.zst or .vma.gz, or -O vma:
                      the image is packed as "vmatool pack" packs it, as
                      drive -d (default scsi0), with pack's options
                      (--config, --vmid, --storage, --level, --uuid,
                      --ctime, --no-backing, --data-file). -c (zstd) or
                      --compression must agree with DST's name: -c
                      with x.vma is refused, x.vma.zst needs no -c.
  ... -> -            -O raw to "-" streams one disk to standard output in
                      disk order, holes as zeros (never to a terminal:
                      redirect it). Archive clusters that
                      come out of order are held in a 64 MiB reorder
                      window, which covers Proxmox's nearly ordered
                      archives; an archive further out of order fails (use
                      a file instead). qcow2 cannot go to a pipe: its
                      tables are written last and its header at the start.

Formats are detected by content, never by name (-f overrides); the output
format comes from -O, or from DST's extension (a folder gets qcow2). -d
takes an archive's device names with or without the drive- prefix. The
folder a single output file goes into must exist; a folder DST is
created.
Archive clusters arrive in any order and go straight into the image, so an
archive is read once, from a pipe if need be. Outputs are written under
temporary names and put in place all together when complete; nothing is
left behind on error, and nothing is overwritten without --force.

--partial salvages a damaged or truncated archive: every cluster that
arrived intact is written, the rest is left as holes (zeros), and each
missing range (device, offset, length) is listed on standard error (and in
--json). A damaged extent is skipped and reading goes on at the next intact
one; the header must be intact.

OPTIONS:

EXAMPLES:
  vmatool convert vzdump-qemu-100-2024_01_01-00_00_00.vma.zst disks/
  vmatool convert -c backup.vma.zst -d scsi0 root.qcow2
  vmatool convert -O raw -d scsi0 backup.vma.zst - | dd of=/dev/sdb bs=1M
  vmatool convert -c --compression zlib nixos.raw nixos.qcow2
  vmatool convert --cluster-size 2M big.qcow2 big-2m.qcow2
  vmatool convert nixos.qcow2 nixos.raw
  vmatool convert --vmid 120 --config qemu-server.conf nixos.qcow2 vzdump-qemu-120-x.vma.zst
  vmatool convert --partial damaged.vma.zst salvaged/

EXIT STATUS:
  0 ok, 1 error (bad input, I/O error; no output left behind), 2 usage
  error,
` + partialHelp + `  130 interrupted.
`

// convertOptions are convert's flags and arguments (SRC and DST).
type convertOptions struct {
	cmdLine
	outFormat   string
	inFormat    string
	device      string
	compress    bool
	compression string
	clusterSize string
	partial     bool
	force       bool
	quiet       bool
	progress    bool
	asJSON      bool
	window      maxWindow

	// For an archive output, passed on to pack.
	configs   []string
	vmid      int
	storage   string
	level     int
	uuid      string
	ctime     int64
	noBacking bool
	dataFile  string
}

// quietRun is whether progress stays off: --quiet, or --json, whose
// output is the only thing on standard output.
func (o *convertOptions) quietRun() bool { return o.quiet || o.asJSON }

func (o *convertOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&o.outFormat, "output-format", "O", "", "output format: qcow2, raw or vma (default: from DST's extension; qcow2 for a folder, raw for -)")
	fs.StringVarP(&o.inFormat, "format", "f", "", "source format: vma, qcow2 or raw (default: detected by content)")
	fs.StringVarP(&o.device, "device", "d", "", "the archive disk to convert (drive-scsi0 or scsi0); for an archive output, the drive name (default scsi0)")
	fs.BoolVarP(&o.compress, "compress", "c", false, "compress the output: qcow2 clusters (zstd unless --compression), or an archive (zstd; DST's name must say .zst, or none, with -O vma)")
	fs.StringVar(&o.compression, "compression", "", "compression type, implies -c: zstd or zlib (qcow2; zlib for QEMU before 5.1); zstd, gzip or none (archive)")
	fs.StringVar(&o.clusterSize, "cluster-size", "", "qcow2 cluster size, a power of two from 512 to 2M (default 64K)")
	fs.BoolVar(&o.partial, "partial", false, "salvage a damaged or truncated archive: write what is intact, list what is missing (exit status 3)")
	fs.BoolVar(&o.force, "force", false, "overwrite existing outputs (-f is the source format, as in qemu-img)")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "no progress display")
	addProgressFlag(fs, &o.progress)
	fs.BoolVar(&o.asJSON, "json", false, "print a summary as JSON: the output path and, per disk, its format, virtual size, bytes written and seconds")
	addMaxWindowFlag(fs, &o.window)
	fs.StringArrayVar(&o.configs, "config", nil, "archive output: config file to store (repeatable), as pack -c")
	fs.IntVar(&o.vmid, "vmid", 100, "archive output: VM id for a generated config and name, as pack --vmid")
	fs.StringVar(&o.storage, "storage", "local-lvm", "archive output: storage in generated drive and map lines, as pack --storage")
	fs.IntVar(&o.level, "level", 0, "archive output: compression level, as pack --level")
	fs.StringVar(&o.uuid, "uuid", "", "archive output: archive uuid, as pack --uuid")
	fs.Int64Var(&o.ctime, "ctime", -1, "archive output: creation time in seconds since the epoch, as pack --ctime")
	fs.BoolVar(&o.noBacking, "no-backing", false, "refuse a qcow2 source that has a backing file")
	fs.StringVar(&o.dataFile, "data-file", "", "external data file of a qcow2 source")
}

// runConvert converts SRC into DST: an archive into images, an image into
// an image or an archive, either onto standard output.
func runConvert(ctx context.Context, s *streams, o *convertOptions) error {
	if len(o.args) != 2 {
		return usagef("want SRC and DST, got %d arguments", len(o.args))
	}
	src, dst := o.args[0], o.args[1]
	if o.compression != "" {
		o.compress = true
	}
	if o.asJSON && dst == "-" {
		return usagef("--json prints to standard output, which DST - takes: write to a file, or leave out --json")
	}
	s = s.withProgress(o.progress)
	srcKind, err := sourceKind(o, src)
	if err != nil {
		return err
	}
	outFormat, err := outputFormat(o, srcKind, dst)
	if err != nil {
		return err
	}
	if err := checkOutputFlags(o, srcKind, outFormat, dst); err != nil {
		return err
	}
	if dst == "-" && s.outIsTTY {
		if outFormat == "vma" {
			return errTerminal
		}
		return errTerminalImage
	}
	switch {
	case outFormat == "vma":
		return convertToArchive(ctx, s, o, src, dst)
	case srcKind == "vma":
		return convertArchive(ctx, s, o, src, dst, outFormat)
	}
	return convertImage(ctx, s, o, src, srcKind, dst, outFormat)
}

// sourceKind says what SRC is: "vma", "qcow2" or "raw", from -f or the
// content.
func sourceKind(o *convertOptions, src string) (string, error) {
	switch o.inFormat {
	case "vma", "qcow2", "raw":
		if src == "-" && o.inFormat != "vma" {
			return "", usagef("an image cannot be read from standard input (it needs random access); only an archive can")
		}
		return o.inFormat, nil
	case "":
	default:
		return "", usagef("-f %q: want vma, qcow2 or raw", o.inFormat)
	}
	if src == "-" {
		return "vma", nil
	}
	id, err := recipe.Identify(src, o.window.option())
	if err != nil {
		return "", err
	}
	return id.Format, nil
}

// archiveSuffixes are the names of archive outputs, compressed or not.
var archiveSuffixes = []string{".vma", ".vma.zst", ".vma.gz", ".vma.lzo", ".vma.bz2"}

func hasSuffix(name string, suffixes ...string) bool {
	for _, x := range suffixes {
		if strings.HasSuffix(name, x) {
			return true
		}
	}
	return false
}

// imageSuffixes name a single image output.
var imageSuffixes = []string{".qcow2", ".raw", ".img"}

// outputFormat picks the output format: -O, or DST's extension.
func outputFormat(o *convertOptions, srcKind, dst string) (string, error) {
	switch o.outFormat {
	case "qcow2", "raw", "vma":
		if dst == "-" && o.outFormat == "qcow2" {
			return "", usagef("-O qcow2 cannot go to standard output: a qcow2 image is written out of order (tables last, header at the start) and needs a seekable file; write to a file, or use -O raw")
		}
		return o.outFormat, nil
	case "":
	default:
		return "", usagef("-O %q: want qcow2, raw or vma", o.outFormat)
	}
	switch {
	case dst == "-":
		return "raw", nil
	case strings.HasSuffix(dst, ".qcow2"):
		return "qcow2", nil
	case hasSuffix(dst, ".raw", ".img"):
		return "raw", nil
	case hasSuffix(dst, archiveSuffixes...):
		return "vma", nil
	case srcKind == "vma":
		return "qcow2", nil // a folder of images
	}
	return "", usagef("cannot tell the output format from %q: give -O qcow2, raw or vma, or a name ending in .qcow2, .raw, .img or .vma[.zst|.gz]", dst)
}

// checkOutputFlags refuses flags that do not apply to the conversion.
func checkOutputFlags(o *convertOptions, srcKind, outFormat, dst string) error {
	if o.partial && srcKind != "vma" {
		return usagef("--partial salvages archives; the source is a %s image", srcKind)
	}
	if srcKind == "vma" && outFormat == "vma" {
		return usagef("archive to archive is not a conversion vmatool makes: unpack, then pack")
	}
	if outFormat == "vma" && o.inFormat != "" {
		return usagef("-f does not apply to an archive output: pack detects the image format by content")
	}
	if outFormat != "vma" {
		for _, f := range []string{"config", "vmid", "storage", "level", "uuid", "ctime"} {
			if o.isGiven(f) {
				return usagef("--%s is for an archive output (DST ending in .vma[.zst|.gz], or -O vma)", f)
			}
		}
	}
	if srcKind == "vma" && (o.isGiven("no-backing") || o.isGiven("data-file")) {
		return usagef("--no-backing and --data-file are for qcow2 sources")
	}
	if srcKind != "vma" && outFormat != "vma" && o.device != "" {
		return usagef("-d names a disk of an archive source, or the drive of an archive output")
	}
	switch outFormat {
	case "raw":
		if o.compress {
			return usagef("-c and --compression are for qcow2 and archive outputs; raw is never compressed")
		}
	case "qcow2":
		switch o.compression {
		case "", "zstd", "zlib":
		default:
			return usagef("--compression %q: want zstd or zlib for qcow2", o.compression)
		}
	case "vma":
		switch o.compression {
		case "", "zstd", "gzip", "none":
		default:
			return usagef("--compression %q: want zstd, gzip or none for an archive", o.compression)
		}
		// -c alone means zstd; either must agree with DST's name.
		flag, c := "--compression", vma.Compression(o.compression)
		if c == "" {
			flag, c = "-c", vma.Zstd
		}
		if o.compress {
			if err := checkCompressionName(flag, c, dst); err != nil {
				return err
			}
		}
	}
	if o.clusterSize != "" && outFormat != "qcow2" {
		return usagef("--cluster-size is for qcow2 outputs")
	}
	return nil
}

// clusterBytes is --cluster-size in bytes (0: the writer's default).
func (o *convertOptions) clusterBytes() (int64, error) {
	if o.clusterSize == "" {
		return 0, nil
	}
	n, err := parseSize(o.clusterSize)
	if err != nil {
		return 0, usagef("--cluster-size: %v", err)
	}
	return n, nil
}

// convertedJSON is one image written, in --json.
type convertedJSON struct {
	Device       string  `json:"device"`
	Format       string  `json:"format"`
	Path         string  `json:"path"`
	VirtualSize  int64   `json:"virtual_size"`
	BytesWritten int64   `json:"bytes_written"`
	Seconds      float64 `json:"seconds"`
}

// convertJSONDoc is convert --json.
type convertJSONDoc struct {
	Source   string          `json:"source"`
	Output   string          `json:"output"`
	Complete bool            `json:"complete"`
	Devices  []convertedJSON `json:"devices"`
	*salvageResult
}

func seconds(since time.Time) float64 {
	d := time.Since(since).Seconds()
	v, _ := strconv.ParseFloat(strconv.FormatFloat(d, 'f', 3, 64), 64)
	return v
}

// fileSize is the size of a file written, or 0 if it cannot be told.
func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// errReorderHint says what to do about an archive too far out of order
// for standard output.
func errReorderHint(err error, src string) error {
	if errors.Is(err, convert.ErrReorderWindow) {
		return fmt.Errorf("%w; convert it to a file instead (vmatool convert -O raw %s disk.raw)", err, src)
	}
	return err
}
