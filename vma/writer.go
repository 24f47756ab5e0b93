package vma

import (
	"bufio"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/google/uuid"
)

// WriterOption configures a Writer.
type WriterOption func(*writerOptions) error

type writerOptions struct {
	uuid    uuid.UUID
	ctime   time.Time
	workers int
}

// WithUUID fixes the archive uuid (default: a random version 4 uuid).
func WithUUID(u uuid.UUID) WriterOption {
	return func(o *writerOptions) error { o.uuid = u; return nil }
}

// WithCtime fixes the archive creation time. By default it is the moment the
// header is written, as in Proxmox's writer.
func WithCtime(t time.Time) WriterOption {
	return func(o *writerOptions) error { o.ctime = t; return nil }
}

// WithWorkers sets how many goroutines WriteDisk uses to read and classify
// clusters (default GOMAXPROCS). One worker runs the same pipeline with no
// overlap between reading and writing.
func WithWorkers(n int) WriterOption {
	return func(o *writerOptions) error {
		if n < 1 {
			return fmt.Errorf("vma: workers must be at least 1, got %d", n)
		}
		o.workers = n
		return nil
	}
}

// writeBufferSize is large enough that runs of hole extents (512 bytes
// each) go out in few system calls, and small enough not to matter beside
// the extent buffers.
const writeBufferSize = 256 << 10

type writerState int

const (
	stateSetup writerState = iota // configs and devices may be added
	stateData                     // clusters are being written
	stateClosed
)

// Writer writes an archive sequentially. Add every config and device first,
// then write every cluster of every device exactly once (WriteCluster in any
// order, or WriteDisk for a whole device), then Close.
//
// Extents are cut exactly where Proxmox's writer cuts them (58 clusters), so
// for the same uuid, ctime, inputs and cluster order the output is byte for
// byte what "vma create" writes.
type Writer struct {
	w       *bufio.Writer // coalesces the 512-byte extents of holes; big extents pass straight through
	opts    writerOptions
	state   writerState
	err     error // sticky
	configs []Config
	devs    []*writerDevice // index dev_id-1

	header  []byte // built at the first flush
	written int64

	ext extentBuilder // the pending extent

	watch func(Cluster) // see OnCluster
}

type writerDevice struct {
	dev      Device
	clusters int64
	seen     clusterSet
	stored   int64 // bytes of stored (non-zero) blocks
}

// NewWriter returns a Writer that writes an archive to w. Nothing is written
// until the first extent is complete, or Close.
func NewWriter(w io.Writer, opts ...WriterOption) (*Writer, error) {
	o := writerOptions{workers: runtime.GOMAXPROCS(0)}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.uuid == (uuid.UUID{}) {
		u, err := uuid.NewRandom()
		if err != nil {
			return nil, fmt.Errorf("vma: making uuid: %w", err)
		}
		o.uuid = u
	}
	wr := &Writer{w: bufio.NewWriterSize(w, writeBufferSize), opts: o}
	wr.ext.reset()
	return wr, nil
}

// AddConfig adds a config blob under the base name of name, as Proxmox does.
func (w *Writer) AddConfig(name string, data []byte) error {
	if err := w.setupCheck(); err != nil {
		return err
	}
	base := name
	if i := strings.LastIndexByte(strings.TrimRight(base, "/"), '/'); i >= 0 {
		base = strings.TrimRight(base, "/")[i+1:]
	}
	switch {
	case len(data) > maxBlobSize:
		return fmt.Errorf("vma: config %s is %d bytes, the limit is %d: %w", quoteName(base), len(data), maxBlobSize, ErrInvalidConfig)
	case len(w.configs) >= maxConfigs:
		return fmt.Errorf("vma: more than %d configs: %w", maxConfigs, ErrInvalidConfig)
	}
	c := Config{Name: base, Data: append([]byte(nil), data...)}
	configs := append(w.configs[:len(w.configs):len(w.configs)], c)
	// The archive must pass Verify: the names must be ones extraction can write.
	if is := checkNames(configs, w.devices()); is != nil {
		return fmt.Errorf("vma: %s: %w (%w)", is.what, ErrInvalidConfig, is.kind)
	}
	if err := w.checkHeaderFits(configs, w.devices()); err != nil {
		return err
	}
	w.configs = configs
	return nil
}

// validDeviceName reports why name cannot be a device name, or nil. Names
// end up in "vma list" lines and #qmdump#map lines that qmrestore parses
// with \S+ and ':' separators, and in the file names extraction writes
// (Device.FileName), which must be plain names of at most 255 bytes.
func validDeviceName(name string) error {
	switch {
	case name == vmstateName:
		return fmt.Errorf("vma: device name %q is reserved for VM state: %w", name, ErrInvalidDevice)
	case strings.ContainsAny(name, " \t\n\r\v\f,=:"):
		return fmt.Errorf("vma: device name %s contains whitespace, ',', '=' or ':': %w", quoteName(name), ErrInvalidDevice)
	}
	if is := checkNames(nil, []Device{{Name: name}}); is != nil {
		return fmt.Errorf("vma: %s: %w (%w)", is.what, ErrInvalidDevice, is.kind)
	}
	return nil
}

// AddDevice registers a device and returns its dev_id (1, 2, ... in order).
// size must be a positive multiple of 512. A device named "vmstate" is the
// VM's RAM state, as in Proxmox's writer: at most one, and its clusters
// must be written in order.
func (w *Writer) AddDevice(name string, size int64) (int, error) {
	if err := w.setupCheck(); err != nil {
		return 0, err
	}
	if name != vmstateName {
		if err := validDeviceName(name); err != nil {
			return 0, err
		}
	}
	switch {
	case size <= 0 || size%512 != 0:
		return 0, fmt.Errorf("vma: device %s: size %d is not a positive multiple of 512: %w", name, size, ErrInvalidDevice)
	case size > 1<<32*ClusterSize:
		return 0, fmt.Errorf("vma: device %s: size %d exceeds 2^32 clusters: %w", name, size, ErrInvalidDevice)
	case len(w.devs) >= maxDevices:
		return 0, fmt.Errorf("vma: more than %d devices: %w", maxDevices, ErrInvalidDevice)
	}
	for _, d := range w.devs {
		if d.dev.Name == name {
			return 0, fmt.Errorf("vma: device name %s used twice: %w", name, ErrInvalidDevice)
		}
	}
	d := Device{ID: len(w.devs) + 1, Name: name, Size: size}
	devs := append(w.devices(), d)
	if is := checkNames(w.configs, devs); is != nil {
		return 0, fmt.Errorf("vma: %s: %w (%w)", is.what, ErrInvalidDevice, is.kind)
	}
	if err := w.checkHeaderFits(w.configs, devs); err != nil {
		return 0, err
	}
	w.devs = append(w.devs, &writerDevice{dev: d, clusters: d.Clusters()})
	return d.ID, nil
}

func (w *Writer) devices() []Device {
	ds := make([]Device, len(w.devs))
	for i, d := range w.devs {
		ds[i] = d.dev
	}
	return ds
}

func (w *Writer) checkHeaderFits(configs []Config, devs []Device) error {
	if n, ok := headerSizeOf(configs, devs); !ok || n > maxHeaderSize {
		return fmt.Errorf("vma: configs and device names need a header of more than %d bytes: %w", maxHeaderSize, ErrHeaderSize)
	}
	return nil
}

func (w *Writer) setupCheck() error {
	switch {
	case w.err != nil:
		return w.err
	case w.state == stateClosed:
		return ErrWriteAfterClose
	case w.state != stateSetup:
		return fmt.Errorf("vma: configs and devices must be added before any cluster: %w", ErrOrder)
	}
	return nil
}

func (w *Writer) device(id int) (*writerDevice, error) {
	if w.err != nil {
		return nil, w.err
	}
	if w.state == stateClosed {
		return nil, ErrWriteAfterClose
	}
	if id < 1 || id > len(w.devs) {
		return nil, fmt.Errorf("vma: no device with id %d: %w", id, ErrUnknownDevice)
	}
	w.state = stateData
	return w.devs[id-1], nil
}

// WriteCluster stores cluster c of device id. data holds the cluster's
// bytes; it may be shorter than ClusterSize (the rest reads as zeros) or nil
// for an all-zero cluster. Blocks at or past the device end are never
// stored, and the part of a block beyond the end is stored as zeros.
func (w *Writer) WriteCluster(id int, c uint32, data []byte) error {
	d, err := w.device(id)
	if err != nil {
		return err
	}
	if len(data) > ClusterSize {
		return fmt.Errorf("vma: cluster data of %d bytes is larger than a cluster", len(data))
	}
	if int64(c) >= d.clusters {
		return fmt.Errorf("vma: device %s has %d clusters, got cluster %d: %w", d.dev.Name, d.clusters, c, ErrClusterOutOfRange)
	}
	if d.seen.has(c) {
		return fmt.Errorf("vma: cluster %d of %s written twice: %w", c, d.dev.Name, ErrDuplicateCluster)
	}
	// Readers take the VM state as a stream: they refuse it out of order.
	if d.dev.IsVMState() && int64(c) != d.seen.count {
		return fmt.Errorf("vma: vmstate cluster %d written after %d clusters: %w", c, d.seen.count, ErrVMStateOrder)
	}
	if w.ext.n >= writerSlots {
		if err := w.flush(); err != nil {
			return err
		}
	}
	d.seen.add(c)
	valid := min(d.dev.Size-int64(c)*ClusterSize, ClusterSize)
	mask := w.ext.addCluster(uint8(id), c, data, int(valid), 0)
	d.stored += int64(countBlocks(mask)) * BlockSize
	w.notify(id, c, mask)
	return nil
}

// StoredBytes returns the bytes of non-zero blocks stored so far for device
// id; the rest of what was written was zeros.
func (w *Writer) StoredBytes(id int) int64 {
	if id < 1 || id > len(w.devs) {
		return 0
	}
	return w.devs[id-1].stored
}

// Close writes the last extent. It fails, writing nothing more, if a device
// is missing clusters. It does not close the underlying writer. Calling it
// again returns the first result.
func (w *Writer) Close() error {
	if w.state == stateClosed {
		return w.err
	}
	if w.err == nil {
		w.err = w.close()
	}
	w.state = stateClosed
	return w.err
}

func (w *Writer) close() error {
	for _, d := range w.devs {
		if d.seen.count != d.clusters {
			first := d.seen.firstMissing(d.clusters)
			return fmt.Errorf("vma: device %s: %d of %d clusters were written, the first missing is %d: %w",
				d.dev.Name, d.seen.count, d.clusters, first, ErrMissingCluster)
		}
	}
	// With no devices this writes the header and one empty extent, as
	// vma_writer_flush_output does.
	if err := w.flush(); err != nil {
		return err
	}
	if err := w.w.Flush(); err != nil {
		return fmt.Errorf("vma: writing archive at offset %d: %w", w.written, err)
	}
	return nil
}

func (w *Writer) writeHeader() error {
	if w.header != nil {
		return nil
	}
	h := &Header{UUID: w.opts.uuid, Ctime: w.opts.ctime, Configs: w.configs, Devices: w.devices()}
	if h.Ctime.IsZero() {
		h.Ctime = time.Now()
	}
	b, err := marshalHeader(h)
	if err != nil {
		return err
	}
	w.header = b
	return w.write(b)
}

// flush writes the pending extent, preceded by the header the first time.
func (w *Writer) flush() error {
	if err := w.writeHeader(); err != nil {
		return err
	}
	if err := w.write(w.ext.seal(w.opts.uuid)); err != nil {
		return err
	}
	w.ext.reset()
	return nil
}

func (w *Writer) write(b []byte) error {
	n, err := w.w.Write(b)
	w.written += int64(n)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = fmt.Errorf("vma: writing archive at offset %d: %w", w.written, err)
	}
	return w.err
}
