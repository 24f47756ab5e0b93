package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/vmatool/vmatool/internal/convert"
	"io"
	"os"

	"github.com/vmatool/vmatool/internal/recipe"
	"github.com/vmatool/vmatool/qcow2"
	"github.com/vmatool/vmatool/vma"
)

// importFile is a disk image ready to upload for ViaImport.
type importFile struct {
	key    string // drive key
	name   string // file name on the import storage
	path   string // the local file
	temp   bool   // path is a temporary file of this run
	size   int64
	sha256 string
}

// qcow2Options are those of the qcow2 files made for upload: compressed,
// since they cross the network, with zstd, which the node's qemu-img
// reads (QEMU 5.1 and later; Proxmox VE 8.4 ships QEMU 9).
func qcow2Options() []qcow2.WriterOption {
	return []qcow2.WriterOption{qcow2.WithCompression(qcow2.CompressionZstd), qcow2.WithWriterWorkers(2)}
}

// uploadableAsIs reports whether an image can be uploaded as it is: a
// qcow2 image without a backing or external data file. The node's upload
// task checks the file with qemu-img info as an untrusted image and
// refuses either (pve-storage src/PVE/Storage.pm file_size_info).
func uploadableAsIs(d *recipe.Device) bool {
	img, ok := d.Disk.(*qcow2.Image)
	return ok && d.Format == recipe.FormatQcow2 && img.BackingFileName() == "" && img.DataFileName() == ""
}

// convertImage writes the disk d reads (through its backing chain, if
// any) as a compressed qcow2 file in dir.
func convertImage(ctx context.Context, dir string, d vma.Disk, p qcow2.Progress) (path string, err error) {
	f, err := os.CreateTemp(dir, "vmatool-import-*.qcow2")
	if err != nil {
		return "", err
	}
	defer func() {
		f.Close()
		if err != nil {
			os.Remove(f.Name())
		}
	}()
	w, err := qcow2.NewWriter(f, d.Size(), qcow2Options()...)
	if err != nil {
		return "", err
	}
	defer w.Abort()
	if err := w.WriteFrom(ctx, d, p); err != nil {
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	return f.Name(), f.Close()
}

// extractArchive writes the devices of src named in want (VMA device
// names) as compressed qcow2 files in dir, in one pass over the archive,
// and returns their paths by device name. Zero blocks stay holes.
// progress counts archive bytes read.
func extractArchive(ctx context.Context, src *Source, dir string, want map[string]bool, progress vma.Progress) (_ map[string]string, err error) {
	f, err := os.Open(src.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dr, _, err := vma.Decompress(&progressReader{ctx: ctx, r: f, p: progress}, src.decompress...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.Path, err)
	}
	defer dr.Close()
	r, err := vma.NewReader(dr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.Path, err)
	}
	if err := r.Header().CheckNames(); err != nil {
		return nil, fmt.Errorf("%s: %w", src.Path, err)
	}
	type out struct {
		f    *os.File
		w    *qcow2.Writer
		sink *convert.Qcow2Sink
	}
	outs := map[int]*out{}
	paths := map[string]string{}
	defer func() {
		for _, o := range outs {
			if err != nil {
				o.w.Abort()
				o.f.Close()
				os.Remove(o.f.Name())
			}
		}
	}()
	for _, d := range r.Header().Devices {
		if !want[d.Name] {
			continue
		}
		tf, err := os.CreateTemp(dir, "vmatool-import-*.qcow2")
		if err != nil {
			return nil, err
		}
		w, err := qcow2.NewWriter(tf, d.Size, qcow2Options()...)
		if err != nil {
			tf.Close()
			os.Remove(tf.Name())
			return nil, err
		}
		outs[d.ID] = &out{f: tf, w: w, sink: convert.NewQcow2Sink(w, d.Size, 0)}
		paths[d.Name] = tf.Name()
	}
	sinks := map[int]convert.Sink{}
	for id, o := range outs {
		sinks[id] = o.sink
	}
	if err := convert.FromArchive(ctx, r, sinks); err != nil {
		return nil, fmt.Errorf("%s: %w", src.Path, err)
	}
	for _, o := range outs {
		if err := o.sink.Flush(); err != nil {
			return nil, err
		}
		if err := o.w.Close(); err != nil {
			return nil, err
		}
		if err := o.f.Close(); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

// hashFile returns the size and SHA-256 of a file, which the upload task
// checks (pve-storage src/PVE/API2/Storage/Status.pm).
func hashFile(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}
