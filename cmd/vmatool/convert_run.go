package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/vmatool/vmatool/internal/recipe"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/vmatool/vmatool/internal/convert"
	"github.com/vmatool/vmatool/qcow2"
	"github.com/vmatool/vmatool/vma"
)

// newQcow2Writer starts a qcow2 image in f with convert's options. Several
// images written at once (the disks of one archive) share the cores and
// the table cache, so that memory does not grow with their number.
func newQcow2Writer(f *os.File, size int64, o *convertOptions, images int) (*qcow2.Writer, error) {
	cs, err := o.clusterBytes()
	if err != nil {
		return nil, err
	}
	var opts []qcow2.WriterOption
	if cs != 0 {
		opts = append(opts, qcow2.WithClusterSize(cs))
	}
	if o.compress {
		c := qcow2.CompressionZstd
		if o.compression == "zlib" {
			c = qcow2.CompressionZlib
		}
		opts = append(opts, qcow2.WithCompression(c))
	}
	if images > 1 {
		opts = append(opts, qcow2.WithWriterWorkers(max(1, runtime.GOMAXPROCS(0)/images)),
			qcow2.WithWriterCacheSize(max(2<<20, 8<<20/int64(images))))
	}
	w, err := qcow2.NewWriter(f, size, opts...)
	if errors.Is(err, qcow2.ErrInvalidOption) {
		return nil, usageError{err.Error()}
	}
	return w, err
}

// openImage opens a raw or qcow2 image through the pack recipe, showing its
// backing chain on s's standard error unless s is nil or the run is quiet.
func (o *convertOptions) openImage(s *streams, path, format string) (*recipe.Device, error) {
	opts := []recipe.Option{recipe.WithBacking(recipe.BackingMode(o.noBacking, true))}
	if s != nil && !o.quietRun() {
		opts = append(opts, recipe.WithChain(chainPrinter(s)))
	}
	d, err := recipe.OpenDisk(recipe.Disk{Path: path, Format: format, DataFile: o.dataFile}, opts...)
	return d, recipeError(err)
}

// convertImage converts a raw or qcow2 image to a qcow2 or raw image, or
// streams it.
func convertImage(ctx context.Context, s *streams, o *convertOptions, src, srcKind, dst, outFormat string) error {
	d, err := o.openImage(s, src, srcKind)
	if err != nil {
		return err
	}
	defer d.Close()
	size := d.Disk.Size()
	res := convertedJSON{Device: src, Format: outFormat, Path: dst, VirtualSize: size}
	start := time.Now()
	m := newMeter(s, o.quietRun(), "convert", size)
	if dst == "-" {
		err := convert.StreamCopy(ctx, s.out, d.Disk, m)
		if err != nil {
			m.Finish()
			return fmt.Errorf("%s: %w", src, err)
		}
		m.Done(size, dst)
		return nil
	}
	out, err := createOutput(dst, o.force)
	if err != nil {
		m.Finish()
		return err
	}
	switch outFormat {
	case "qcow2":
		var w *qcow2.Writer
		if w, err = newQcow2Writer(out.File, size, o, 1); err == nil {
			res.VirtualSize = w.Size()
			if err = w.WriteFrom(ctx, d.Disk, m); err == nil {
				err = w.Close()
			}
			w.Abort() // stops the workers after a failure; nothing after Close
		}
	case "raw":
		if err = out.Truncate(size); err == nil {
			res.BytesWritten, err = convert.SparseCopy(ctx, out, d.Disk, m)
		}
	}
	if err != nil {
		m.Finish()
		out.Abort()
		var ue usageError
		if errors.As(err, &ue) {
			return err
		}
		return fmt.Errorf("%s -> %s: %w", src, dst, err)
	}
	if outFormat == "qcow2" {
		if st, serr := out.Stat(); serr == nil {
			res.BytesWritten = st.Size()
		}
	}
	if err := out.Commit(); err != nil {
		m.Finish()
		return err
	}
	m.Done(res.BytesWritten, dst)
	res.Seconds = seconds(start)
	if o.asJSON {
		return writeJSON(s.out, convertJSONDoc{Source: src, Output: dst, Complete: true, Devices: []convertedJSON{res}})
	}
	return nil
}

// convertDevices picks the archive's devices to convert: the one -d names
// (with or without drive-), or every disk.
func convertDevices(h *vma.Header, name string) ([]vma.Device, error) {
	if name != "" {
		if d, ok := findDevice(h, name); ok {
			return []vma.Device{d}, nil
		}
		var names []string
		for _, d := range h.Devices {
			names = append(names, d.Name)
		}
		return nil, fmt.Errorf("no device named %q in the archive (it has: %s)", name, strings.Join(names, ", "))
	}
	var disks []vma.Device
	for _, d := range h.Devices {
		if !d.IsVMState() {
			disks = append(disks, d)
		}
	}
	if len(disks) == 0 {
		return nil, errors.New("the archive holds no disks")
	}
	return disks, nil
}

// imageFileName is the name of a device's image in an output folder:
// disk-<devname>.qcow2 or .raw.
func imageFileName(d vma.Device, format string) string {
	if d.IsVMState() {
		return "vmstate." + format
	}
	return strings.TrimSuffix(d.FileName(), ".raw") + "." + format
}

// isFolder reports whether DST names a folder: an existing one, or a
// name ending in a slash.
func isFolder(dst string) bool {
	if strings.HasSuffix(dst, string(filepath.Separator)) {
		return true
	}
	st, err := os.Stat(dst)
	return err == nil && st.IsDir()
}

// countingWriterAt counts the bytes written through it.
type countingWriterAt struct {
	w io.WriterAt
	n int64
}

func (c *countingWriterAt) WriteAt(p []byte, off int64) (int, error) {
	n, err := c.w.WriteAt(p, off)
	c.n += int64(n)
	return n, err
}

// imageOut is one image an archive conversion writes.
type imageOut struct {
	dev  vma.Device
	f    *os.File
	w    *qcow2.Writer
	sink *convert.Qcow2Sink
	raw  *countingWriterAt
	res  convertedJSON
}

// convertArchive converts disks of an archive to images, a folder of them
// or one file, or streams one.
func convertArchive(ctx context.Context, s *streams, o *convertOptions, src, dst, outFormat string) (err error) {
	var ropts []vma.ReaderOption
	if o.partial {
		ropts = append(ropts, vma.WithSalvage())
	}
	a, err := openArchiveWith(s, src, o.quietRun(), "convert", ropts, o.window.option())
	if err != nil {
		return err
	}
	defer a.Close()
	h := a.reader.Header()
	devs, err := convertDevices(h, o.device)
	if err != nil {
		return fmt.Errorf("%s: %w", a.name, err)
	}
	single := dst == "-" || hasSuffix(dst, imageSuffixes...) || (o.device != "" && !isFolder(dst))
	if single && len(devs) != 1 {
		var names []string
		for _, d := range devs {
			names = append(names, d.Name)
		}
		return usagef("%s has %d disks (%s): name one with -d, or give a folder as DST", a.name, len(devs), strings.Join(names, ", "))
	}
	// As unpack and verify: an archive whose names could not be unpacked
	// is refused, whatever the output.
	if err := h.CheckNames(); err != nil {
		return a.wrap(err)
	}
	defer func() {
		if err != nil && !o.partial {
			err = damageHint(err, "convert")
		}
	}()
	if dst == "-" {
		return streamArchive(ctx, s, o, a, devs[0])
	}

	start := time.Now()
	outs := make([]*imageOut, len(devs))
	var set *outputSet
	var file *outFile
	if single {
		if file, err = createOutput(dst, o.force); err != nil {
			return err
		}
		outs[0] = &imageOut{dev: devs[0], f: file.File}
		outs[0].res.Path = dst
	} else {
		names := make([]string, len(devs))
		for i, d := range devs {
			names[i] = imageFileName(d, outFormat)
		}
		if set, err = newOutputSet(dst, names, false, o.force, s.err); err != nil {
			var oc *outputConflict
			if errors.As(err, &oc) {
				for _, d := range devs {
					if imageFileName(d, outFormat) == oc.name {
						return a.outputErr(fmt.Sprintf("device %q", d.Name), d.NameOffset(), oc.err)
					}
				}
			}
			return err
		}
		for i, d := range devs {
			f, err := set.create(names[i])
			if err != nil {
				set.abort()
				return a.outputErr(fmt.Sprintf("device %q", d.Name), d.NameOffset(), err)
			}
			outs[i] = &imageOut{dev: d, f: f}
			outs[i].res.Path = filepath.Join(dst, names[i])
		}
	}
	defer func() {
		if err == nil {
			return
		}
		for _, x := range outs {
			if x != nil && x.w != nil {
				x.w.Abort()
			}
		}
		if set != nil {
			set.abort()
		}
		if file != nil {
			file.Abort()
		}
	}()

	for _, x := range outs {
		x.res.Device, x.res.Format, x.res.VirtualSize = x.dev.Name, outFormat, x.dev.Size
	}
	if outFormat == "raw" {
		targets := map[int]io.WriterAt{}
		for _, x := range outs {
			if err := x.f.Truncate(x.dev.Size); err != nil {
				return a.outputErr(fmt.Sprintf("device %q", x.dev.Name), x.dev.NameOffset(), err)
			}
			x.raw = &countingWriterAt{w: x.f}
			targets[x.dev.ID] = x.raw
		}
		if err := vma.Extract(ctx, a.reader, targets); err != nil {
			return a.wrap(err)
		}
		for _, x := range outs {
			x.res.BytesWritten, x.res.Seconds = x.raw.n, seconds(start)
		}
	} else {
		sinks := map[int]convert.Sink{}
		for _, x := range outs {
			if x.w, err = newQcow2Writer(x.f, x.dev.Size, o, len(outs)); err != nil {
				return err
			}
			x.res.VirtualSize = x.w.Size()
			x.sink = convert.NewQcow2Sink(x.w, x.dev.Size, 0)
			sinks[x.dev.ID] = x.sink
		}
		if err := convert.FromArchive(ctx, a.reader, sinks); err != nil {
			if errors.Is(err, convert.ErrScattered) {
				err = fmt.Errorf("%w; --cluster-size 64K (the archive's) needs no assembly", err)
			}
			return a.wrap(err)
		}
		for _, x := range outs {
			if err := x.sink.Flush(); err != nil {
				return fmt.Errorf("%s: %s: %w", a.name, x.dev.Name, err)
			}
			if err := x.w.Close(); err != nil {
				return fmt.Errorf("%s: %s: %w", a.name, x.dev.Name, err)
			}
			if st, err := x.f.Stat(); err == nil {
				x.res.BytesWritten = st.Size()
			}
			x.res.Seconds = seconds(start)
		}
	}
	var sr *salvageResult
	if o.partial {
		sr = collectSalvage(a.reader, nil)
	}
	if file != nil {
		err = file.Commit()
	} else {
		err = set.commit(ctx)
	}
	if err != nil {
		return err
	}
	if o.asJSON {
		doc := convertJSONDoc{Source: src, Output: dst, Complete: sr == nil || sr.complete(), salvageResult: sr}
		for _, x := range outs {
			doc.Devices = append(doc.Devices, x.res)
		}
		if err := writeJSON(s.out, doc); err != nil {
			return err
		}
	}
	if sr != nil && !sr.complete() {
		a.meter.Finish() // end the progress line before the report
		sr.report(s.err, "convert", a, dst)
		return errPartial
	}
	var written int64
	for _, x := range outs {
		written += x.res.BytesWritten
	}
	a.meter.Done(written, dst)
	return nil
}

// streamArchive writes one disk of an archive to standard output.
func streamArchive(ctx context.Context, s *streams, o *convertOptions, a *archiveInput, d vma.Device) error {
	// Room for the reorder window on top of the reading pipeline.
	scaleMemoryLimit(s.getenv, 3)
	sink := convert.NewStreamSink(s.out, d.Size, convert.DefaultWindow, o.partial)
	err := convert.FromArchive(ctx, a.reader, map[int]convert.Sink{d.ID: sink})
	if err == nil {
		err = sink.Close()
	}
	if err != nil {
		return errReorderHint(a.wrap(err), a.name)
	}
	if !o.partial {
		a.meter.Done(d.Size, "-")
		return nil
	}
	sr := collectSalvage(a.reader, map[int][][2]int64{d.ID: sink.Lost()})
	if sr.complete() {
		a.meter.Done(d.Size, "-")
		return nil
	}
	a.meter.Finish()
	sr.report(s.err, "convert", a, "standard output")
	return errPartial
}

// convertToArchive packs an image into an archive, as pack does with one
// disk: convert's options become pack's.
func convertToArchive(ctx context.Context, s *streams, o *convertOptions, src, dst string) error {
	po := defaults[packOptions]()
	po.output, po.force, po.quiet, po.progress = dst, o.force, o.quiet, s.progress
	switch {
	case o.compression != "":
		po.compress = o.compression
	case o.compress && !hasSuffix(dst, ".zst", ".gz"):
		po.compress = "zstd"
	}
	po.configs, po.noBacking = o.configs, o.noBacking
	// Pack's own defaults stand for the flags convert was not given.
	if o.isGiven("vmid") {
		po.vmid = o.vmid
	}
	if o.isGiven("storage") {
		po.storage = o.storage
	}
	if o.isGiven("level") {
		po.level = o.level
	}
	po.uuid = o.uuid
	if o.isGiven("ctime") {
		po.ctime = o.ctime
		po.give("ctime")
	}
	if o.dataFile != "" {
		po.dataFiles = []string{o.dataFile}
	}
	drive := o.device
	if drive == "" {
		drive = "scsi0"
	}
	po.args = []string{drive + "=" + src}

	// Pack prints the path it wrote on standard output; --json reports it
	// instead, and has no progress line to share the terminal with.
	ps := *s
	var printed bytes.Buffer
	if o.asJSON {
		ps.out, ps.errisTTY = &printed, false
	}
	start := time.Now()
	if err := runPack(ctx, &ps, po); err != nil {
		return err
	}
	if !o.asJSON {
		return nil
	}
	path := strings.TrimSpace(printed.String())
	res := convertedJSON{Device: drive, Format: "vma", Path: path, BytesWritten: fileSize(path), Seconds: seconds(start)}
	if d, err := o.openImage(nil, src, ""); err == nil {
		res.VirtualSize = d.Disk.Size()
		d.Close()
	}
	return writeJSON(s.out, convertJSONDoc{Source: src, Output: path, Complete: true, Devices: []convertedJSON{res}})
}
