package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/spf13/pflag"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/vmatool/vmatool/internal/ptable"
	"github.com/vmatool/vmatool/internal/recipe"
	"github.com/vmatool/vmatool/qcow2"
	"github.com/vmatool/vmatool/raw"
	"github.com/vmatool/vmatool/vma"
)

const infoHelp = `Usage: vmatool info [--json] [--backing-chain] [--data-file PATH] IMAGE|ARCHIVE

Describes a disk image (raw or qcow2) or a VMA archive, detected by content;
"-" reads an archive (not an image: that needs random access) from
standard input.

For an image: format, virtual size, allocated bytes, and for qcow2 the
version, cluster size, compression, backing file and feature flags. For an
archive: uuid, creation time, configs, and each device's size and stored
bytes (the archive is read, and so verified, to the end). For every disk,
of an image or inside an archive, its partition table (GPT or MBR) with each
partition's start, size, type and name, read in place. A damaged
partition table does not stop info: the rest is printed, and a warning
says what is wrong (on standard error, and in --json's "warnings").

--json prints {"file", "format", then for an image "image": {...}, for an
archive the fields list --json and verify --json print for it (uuid,
ctime, ctime_unix, compression, configs, devices) and "archive_size"; then
"disks": [{"name", "size", "stored_bytes", "partition_table"}] and
"warnings": [...]}. See "JSON output" in the README.

Only the file named is read, as with qemu-img info: a qcow2 image's backing
file is shown by the name its header gives, and not opened, so a partition
table that lies in it is not shown. --backing-chain opens the chain (regular
files only; it is shown on standard error unless --quiet) and reads through
it; --no-backing refuses an image that has a backing file.

OPTIONS:

EXAMPLES:
  vmatool info result/nixos.qcow2
  vmatool info --backing-chain overlay.qcow2
  vmatool info --json vzdump-qemu-100-2024_01_01-00_00_00.vma.zst
  ssh pve cat /var/lib/vz/dump/vzdump-qemu-100-x.vma.zst | vmatool info -

EXIT STATUS:
  0 ok (also with a warning about a damaged partition table), 1 unreadable
  or malformed input, 2 usage error.
`

// infoDoc is what info prints; --json prints it as is.
type infoDoc struct {
	File   string     `json:"file"`
	Format string     `json:"format"` // raw, qcow2 or vma
	Image  *imageInfo `json:"image,omitempty"`
	// An archive: what list --json and verify --json say about it, and
	// its uncompressed size.
	*ArchiveDoc
	ArchiveSize int64         `json:"archive_size,omitempty"`
	Disks       []diskInfoDoc `json:"disks"`
	// Warnings are what info could not read but did not need to: a
	// damaged partition table. They are also printed on standard error.
	Warnings []string `json:"warnings"`
}

type imageInfo struct {
	VirtualSize int64      `json:"virtual_size"`
	FileSize    int64      `json:"file_size"`
	Allocated   int64      `json:"allocated"`
	Qcow2       *qcow2Info `json:"qcow2,omitempty"`
	// The backing file as the header names it, opened or not.
	BackingFile   string `json:"backing_file,omitempty"`
	BackingFormat string `json:"backing_format,omitempty"`
	// The chain, with --backing-chain.
	Backing []qcow2.BackingInfo `json:"backing,omitempty"`
}

type qcow2Info struct {
	Version     int    `json:"version"`
	ClusterSize int64  `json:"cluster_size"`
	Compression string `json:"compression"`
	ExtendedL2  bool   `json:"extended_l2"`
	Dirty       bool   `json:"dirty"`
	Corrupt     bool   `json:"corrupt"`
	DataFile    string `json:"data_file,omitempty"`
	// Bytes of the virtual disk by how the image stores them.
	Data        int64 `json:"data"`
	Compressed  int64 `json:"compressed"`
	Zero        int64 `json:"zero"`
	Unallocated int64 `json:"unallocated"`
}

type diskInfoDoc struct {
	Name        string        `json:"name"`
	Size        int64         `json:"size"`
	StoredBytes *int64        `json:"stored_bytes,omitempty"` // inside an archive
	Partitions  *ptable.Table `json:"partition_table"`
	// PartitionsNote says why Partitions is null, when it is not for
	// want of a table.
	PartitionsNote string `json:"partition_table_note,omitempty"`
}

// partitionsNeedBacking is the note for a partition table that reads from
// a backing file info did not open.
const partitionsNeedBacking = "not read: it needs the backing file (--backing-chain reads it)"

// infoOptions are info's flags and argument (IMAGE or ARCHIVE).
type infoOptions struct {
	cmdLine
	asJSON      bool
	dataFile    string
	window      maxWindow
	followChain bool
	noBacking   bool
	quiet       bool
}

func (o *infoOptions) addFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.asJSON, "json", false, "print JSON")
	fs.StringVar(&o.dataFile, "data-file", "", "external data file of a qcow2 image")
	addMaxWindowFlag(fs, &o.window)
	fs.BoolVar(&o.followChain, "backing-chain", false, "open a qcow2 image's backing chain and read through it")
	fs.BoolVar(&o.noBacking, "no-backing", false, "refuse a qcow2 image that has a backing file")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "do not show the backing chain on standard error")
}

// runInfo describes an image or an archive.
func runInfo(ctx context.Context, s *streams, o *infoOptions) error {
	path, err := oneArg(o.args, "IMAGE or ARCHIVE")
	if err != nil {
		return err
	}
	var doc *infoDoc
	if path == "-" {
		// An image needs random access; a stream can only be an archive.
		doc, err = archiveInfoOf(ctx, s, path, o.window.option())
		if errors.Is(err, vma.ErrNotVMA) {
			err = fmt.Errorf("%w (info reads an image only from a file; standard input must hold an archive)", err)
		}
	} else {
		var src *recipe.Source
		if src, err = recipe.Identify(path, o.window.option()); err != nil {
			return windowHint(err)
		}
		if src.Archive() {
			doc, err = archiveInfoOf(ctx, s, path, o.window.option())
		} else {
			opts := []recipe.Option{recipe.WithBacking(recipe.BackingMode(o.noBacking, o.followChain))}
			if !o.quiet {
				opts = append(opts, recipe.WithChain(chainPrinter(s)))
			}
			doc, err = imageInfoOf(recipe.Disk{Path: path, Format: src.Format, DataFile: o.dataFile}, opts...)
		}
	}
	if err != nil {
		return err
	}
	for _, w := range doc.Warnings {
		fmt.Fprintf(s.err, "vmatool info: warning: %s\n", w)
	}
	if o.asJSON {
		return writeJSON(s.out, doc)
	}
	writeInfo(s.out, doc)
	return nil
}

// readPartitions reads the partition table of disk di, from r. A damaged
// table is a warning, not a failure: everything else info says still
// holds. what names the disk in messages.
func (doc *infoDoc) readPartitions(di *diskInfoDoc, r io.ReaderAt, what string) error {
	t, err := ptable.Read(r, di.Size)
	switch {
	case err == nil:
		di.Partitions = t
	case errors.Is(err, qcow2.ErrBackingSkipped):
		di.PartitionsNote = partitionsNeedBacking
	case errors.Is(err, ptable.ErrCorrupt):
		di.PartitionsNote = "unreadable: " + err.Error()
		doc.Warnings = append(doc.Warnings, fmt.Sprintf("%s: %v; the rest of the information stands", what, err))
	default:
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func imageInfoOf(spec recipe.Disk, opts ...recipe.Option) (*infoDoc, error) {
	path := spec.Path
	d, err := recipe.OpenDisk(spec, opts...)
	if err != nil {
		return nil, recipeError(err)
	}
	defer d.Close()
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	doc := &infoDoc{File: path, Format: d.Format, Image: &imageInfo{VirtualSize: d.Disk.Size(), FileSize: st.Size()}, Warnings: []string{}}
	switch img := d.Disk.(type) {
	case *raw.Disk:
		if doc.Image.Allocated, err = img.Allocated(); err != nil {
			return nil, err
		}
	case *qcow2.Image:
		q := &qcow2Info{Version: img.Version(), ClusterSize: img.ClusterSize(), Compression: img.Compression().String(),
			ExtendedL2: img.ExtendedL2(), Dirty: img.Dirty(), Corrupt: img.Corrupt(), DataFile: img.DataFileName()}
		// One extent at a time: a hostile image can claim billions.
		err := img.WalkExtents(0, img.Size(), func(e qcow2.Extent) error {
			switch e.State {
			case qcow2.Data:
				q.Data += e.Length
			case qcow2.Compressed:
				q.Compressed += e.Length
			case qcow2.Zero:
				q.Zero += e.Length
			default:
				q.Unallocated += e.Length
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		doc.Image.Qcow2, doc.Image.Backing = q, img.Backing()
		doc.Image.BackingFile, doc.Image.BackingFormat = img.BackingFileName(), img.BackingFormat()
		doc.Image.Allocated = q.Data + q.Compressed
	}
	disk := diskInfoDoc{Name: path, Size: d.Disk.Size()}
	if err := doc.readPartitions(&disk, d.Disk, path); err != nil {
		return nil, err
	}
	doc.Disks = []diskInfoDoc{disk}
	return doc, nil
}

// edgeBytes is how much of each end of a device info keeps while streaming
// an archive: enough for an MBR and both copies of a GPT with 4 KiB
// sectors, and small enough to keep 254 devices in bounded memory.
const edgeBytes = 64 << 10

func archiveInfoOf(ctx context.Context, s *streams, path string, opts ...vma.DecompressOption) (*infoDoc, error) {
	a, err := openArchive(s, path, true, "", opts...)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	h := a.reader.Header()
	edges := map[int]*edgeDisk{}
	for _, d := range h.Devices {
		edges[d.ID] = newEdgeDisk(d.Size)
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ext, err := a.reader.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, a.wrap(err)
		}
		for _, c := range ext.Clusters {
			edges[c.Device].keep(&c)
		}
	}
	doc := &infoDoc{File: path, Format: "vma", ArchiveDoc: newArchiveDoc(a), ArchiveSize: a.reader.Offset(),
		Disks: []diskInfoDoc{}, Warnings: []string{}}
	for _, d := range h.Devices {
		stored := a.reader.StoredBytes(d.ID)
		di := diskInfoDoc{Name: d.Name, Size: d.Size, StoredBytes: &stored}
		if !d.IsVMState() {
			if err := doc.readPartitions(&di, edges[d.ID], fmt.Sprintf("%s: device %s", a.name, d.Name)); err != nil {
				return nil, err
			}
		}
		doc.Disks = append(doc.Disks, di)
	}
	return doc, nil
}

// edgeDisk is a device seen through its first and last edgeBytes; the rest
// reads as zeros.
type edgeDisk struct {
	size     int64
	head     []byte
	tail     []byte
	tailFrom int64
}

func newEdgeDisk(size int64) *edgeDisk {
	e := &edgeDisk{size: size, head: make([]byte, min(size, edgeBytes))}
	e.tailFrom = max(size-edgeBytes, int64(len(e.head)))
	e.tail = make([]byte, size-e.tailFrom)
	return e
}

func (e *edgeDisk) keep(c *vma.Cluster) {
	for b := 0; b < vma.BlocksPerCluster; b++ {
		blk := c.Block(b)
		if blk == nil {
			continue
		}
		off := int64(c.Index)*vma.ClusterSize + int64(b)*vma.BlockSize
		if off < int64(len(e.head)) {
			copy(e.head[off:], blk)
		}
		if end := off + vma.BlockSize; end > e.tailFrom && off < e.size {
			lo := max(off, e.tailFrom)
			copy(e.tail[lo-e.tailFrom:], blk[lo-off:min(end, e.size)-off])
		}
	}
}

func (e *edgeDisk) ReadAt(p []byte, off int64) (int, error) {
	if off >= e.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), e.size-off))
	clear(p[:n])
	if off < int64(len(e.head)) {
		copy(p[:n], e.head[off:])
	}
	if end := off + int64(n); end > e.tailFrom {
		lo := max(off, e.tailFrom)
		copy(p[lo-off:n], e.tail[lo-e.tailFrom:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func writeInfo(w io.Writer, doc *infoDoc) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "file:\t%s\n", doc.File)
	if im := doc.Image; im != nil {
		format := doc.Format
		if q := im.Qcow2; q != nil {
			format = fmt.Sprintf("qcow2 (version %d)", q.Version)
		}
		fmt.Fprintf(tw, "format:\t%s\n", format)
		fmt.Fprintf(tw, "virtual size:\t%s (%d bytes)\n", humanBytes(im.VirtualSize), im.VirtualSize)
		fmt.Fprintf(tw, "file size:\t%s (%d bytes)\n", humanBytes(im.FileSize), im.FileSize)
		fmt.Fprintf(tw, "allocated:\t%s (%d bytes)\n", humanBytes(im.Allocated), im.Allocated)
		if q := im.Qcow2; q != nil {
			fmt.Fprintf(tw, "cluster size:\t%d\n", q.ClusterSize)
			fmt.Fprintf(tw, "compression:\t%s\n", q.Compression)
			fmt.Fprintf(tw, "stored as:\tdata %s, compressed %s, zero %s, unallocated %s\n",
				humanBytes(q.Data), humanBytes(q.Compressed), humanBytes(q.Zero), humanBytes(q.Unallocated))
			var flags []string
			for _, f := range []struct {
				on   bool
				name string
			}{{q.ExtendedL2, "extended L2"}, {q.Dirty, "dirty"}, {q.Corrupt, "corrupt"}} {
				if f.on {
					flags = append(flags, f.name)
				}
			}
			if len(flags) > 0 {
				fmt.Fprintf(tw, "flags:\t%s\n", strings.Join(flags, ", "))
			}
			if q.DataFile != "" {
				fmt.Fprintf(tw, "data file:\t%s\n", q.DataFile)
			}
		}
		if doc.Format == "qcow2" {
			writeBacking(tw, im)
		}
	}
	if a := doc.ArchiveDoc; a != nil {
		format := "vma"
		if a.Compression != string(vma.None) {
			format += " (" + a.Compression + "-compressed)"
		}
		fmt.Fprintf(tw, "format:\t%s\n", format)
		fmt.Fprintf(tw, "uuid:\t%s\n", a.UUID)
		fmt.Fprintf(tw, "ctime:\t%s (%d)\n", a.Ctime, a.CtimeUnix)
		fmt.Fprintf(tw, "archive size:\t%s (%d bytes, uncompressed)\n", humanBytes(doc.ArchiveSize), doc.ArchiveSize)
		for _, c := range a.Configs {
			fmt.Fprintf(tw, "config:\t%s (%d bytes)\n", c.Name, c.Size)
		}
	}
	tw.Flush()
	for _, d := range doc.Disks {
		fmt.Fprintf(w, "\ndisk %s: %s (%d bytes)", d.Name, humanBytes(d.Size), d.Size)
		if d.StoredBytes != nil {
			fmt.Fprintf(w, ", %s stored", humanBytes(*d.StoredBytes))
		}
		fmt.Fprintln(w)
		if d.PartitionsNote != "" {
			fmt.Fprintf(w, "  partitions: %s\n", d.PartitionsNote)
		}
		writePartitions(w, d.Partitions)
	}
}

// writeBacking shows a qcow2 image's backing file as its header names it,
// and the chain when it was opened.
func writeBacking(w io.Writer, im *imageInfo) {
	if im.BackingFile == "" {
		fmt.Fprintf(w, "backing file:\tnone\n")
		return
	}
	name := fmt.Sprintf("%q", im.BackingFile)
	if im.BackingFormat != "" {
		name += " (" + im.BackingFormat + ")"
	}
	fmt.Fprintf(w, "backing file:\t%s\n", name)
	if len(im.Backing) == 0 {
		fmt.Fprintf(w, "backing chain:\tnot opened (--backing-chain opens it)\n")
		return
	}
	var chain []string
	for _, b := range im.Backing {
		chain = append(chain, fmt.Sprintf("%s (%s)", b.Path, b.Format))
	}
	fmt.Fprintf(w, "backing chain:\t%s\n", strings.Join(chain, " -> "))
}

func writePartitions(w io.Writer, t *ptable.Table) {
	if t == nil {
		return
	}
	if t.Type == ptable.TypeNone {
		fmt.Fprintln(w, "  no partition table")
		return
	}
	fmt.Fprintf(w, "  partition table: %s (id %s, %d-byte sectors), %d partitions\n", t.Type, t.ID, t.SectorSize, len(t.Partitions))
	if len(t.Partitions) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\tSTART\tSIZE\tTYPE\tNAME")
	for _, p := range t.Partitions {
		typ := p.Type
		if p.TypeName != "" {
			typ = p.TypeName
		}
		fmt.Fprintf(tw, "  %d\t%d\t%s\t%s\t%s\n", p.Index, p.Start, humanBytes(p.Size), typ, p.Name)
	}
	tw.Flush()
}
