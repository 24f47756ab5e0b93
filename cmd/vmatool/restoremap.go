package main

// "extract -r": the protocol qmrestore speaks with vma (qemu-server's
// restore_vma_archive runs "vma extract -v -r FIFO ARCHIVE|- TMPDIR"). vma
// writes the configs to TMPDIR and prints the archive's listing; on the
// CTIME: line qmrestore reads TMPDIR/qemu-server.conf, allocates a volume
// per DEV: line and writes one map line per disk into the FIFO, then
// "done"; vma then restores each disk into the volume its line names.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/vmatool/vmatool/internal/recipe"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vmatool/vmatool/vma"
)

// mappedRestore is one "extract -r" run.
type mappedRestore struct {
	dir     string   // TMPDIR: configs and the VM state
	mapPath string   // the FIFO (or file) of map lines
	drives  []string // -d: only these disks, or nil for all
	stats   *readStats
}

// restoreMap is one map line: where a disk goes, and how.
type restoreMap struct {
	devname    string
	path       string
	format     string
	bps        uint64 // throttling.bps: bytes per second written, 0 for no limit
	group      string // throttling.group
	cache      string
	writeZeros bool
	skip       bool
}

// maxMapLine is the longest map line vma reads (fgets into 8 KiB).
const maxMapLine = 8191

// mapOptions are the options a map line may give before <0|1>, each once.
var mapOptions = []string{"format", "throttling.bps", "throttling.group", "cache"}

// cacheModes are QEMU's cache modes, which vma accepts. vmatool writes
// through the page cache whatever the mode and syncs each target before it
// exits, which gives every mode's guarantee at the end of the restore.
var cacheModes = []string{"none", "writeback", "writethrough", "directsync", "unsafe"}

// parseMapLine parses a map line without its newline, as vma does.
func parseMapLine(line string) (restoreMap, error) {
	var m restoreMap
	if rest, ok := strings.CutPrefix(line, "skip"); ok {
		name, ok := strings.CutPrefix(rest, "=")
		if !ok || name == "" {
			return m, fmt.Errorf("read map failed - option 'skip' has no value ('%s')", line)
		}
		return restoreMap{devname: name, skip: true}, nil
	}
	values := map[string]string{}
	rest := line
	for {
		name, value, ok := "", "", false
		for _, o := range mapOptions {
			if v, found := strings.CutPrefix(rest, o+"="); found {
				name, value, ok = o, v, true
				break
			}
		}
		if !ok {
			break
		}
		if _, dup := values[name]; dup {
			return m, fmt.Errorf("read map failed - duplicate value for option '%s'", name)
		}
		v, after, terminated := strings.Cut(value, ":")
		if !terminated {
			return m, fmt.Errorf("read map failed - option '%s' not terminated ('%s')", name, line)
		}
		values[name], rest = v, after
	}
	m.format, m.group, m.cache = values["format"], values["throttling.group"], values["cache"]
	if v, ok := values["throttling.bps"]; ok {
		n, err := strconv.ParseUint(v, 0, 64)
		if err != nil || strings.Contains(v, "_") {
			return m, fmt.Errorf("read map failed - not a number: %s", v)
		}
		m.bps = n
	}
	if m.cache != "" && !slices.Contains(cacheModes, m.cache) {
		return m, fmt.Errorf("invalid cache option: %s (want one of %s)", m.cache, strings.Join(cacheModes, ", "))
	}
	switch {
	case strings.HasPrefix(rest, "0:"):
		m.writeZeros = false
	case strings.HasPrefix(rest, "1:"):
		m.writeZeros = true
	default:
		return m, fmt.Errorf("read map failed - parse error ('%s')", line)
	}
	name, path, ok := strings.Cut(rest[2:], "=")
	if !ok || name == "" {
		return m, fmt.Errorf("read map failed - no dev name specified ('%s')", line)
	}
	m.devname, m.path = name, path
	return m, nil
}

// readMap reads map lines up to "done", an empty line or the end. A later
// line for a disk replaces an earlier one, as in vma.
// readMapFile reads the map lines from the FIFO or file at path, or from
// standard input for "-", and closes it once read, as qemu-server's side
// expects of a FIFO.
func readMapFile(s *streams, path string) (map[string]restoreMap, error) {
	if path == "-" {
		maps, err := readMap(s.in)
		if err != nil {
			return nil, fmt.Errorf("<stdin>: %w", err)
		}
		return maps, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("unable to open fifo %s: %w", path, err)
	}
	maps, err := readMap(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return maps, nil
}

func readMap(r io.Reader) (map[string]restoreMap, error) {
	maps := map[string]restoreMap{}
	br := bufio.NewReaderSize(r, maxMapLine+1)
	for {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("read map failed - line longer than %d bytes", maxMapLine)
		}
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("read map failed - %w", err)
		}
		line := strings.TrimSuffix(string(b), "\n")
		if line == "" || line == "done" {
			return maps, nil
		}
		m, perr := parseMapLine(line)
		if perr != nil {
			return nil, perr
		}
		maps[m.devname] = m
		if err == io.EOF {
			return maps, nil
		}
	}
}

// restoreDir is what "extract -r" made in TMPDIR: the configs, which must
// be in place while the disks are restored (qmrestore reads them on the
// CTIME: line), and the VM state. A failed or interrupted restore removes
// them, and TMPDIR, which it made.
type restoreDir struct {
	mu    sync.Mutex
	dir   string
	files []string
	done  bool
}

func (d *restoreDir) add(path string) {
	d.mu.Lock()
	d.files = append(d.files, path)
	d.mu.Unlock()
}

func (d *restoreDir) abort() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done {
		return
	}
	for i := len(d.files) - 1; i >= 0; i-- {
		os.Remove(d.files[i])
	}
	os.Remove(d.dir) // only if empty: never what others put there
	d.done = true
	untrack(d)
}

// keep ends a successful restore: TMPDIR stays, for qmrestore to read and
// remove.
func (d *restoreDir) keep() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.done = true
	untrack(d)
}

// restoreMapped runs "extract -r".
func restoreMapped(ctx context.Context, s *streams, a *archiveInput, job mappedRestore) (err error) {
	h := a.reader.Header()
	if err := h.CheckNames(); err != nil {
		return a.wrap(err)
	}
	rd, err := writeConfigs(ctx, a, job.dir, s.err)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			rd.abort()
		}
	}()
	writeListing(s.out, h)

	maps, err := readMapFile(s, job.mapPath)
	if err != nil {
		return err
	}
	mapName := job.mapPath
	if mapName == "-" {
		mapName = "<stdin>" // as errors name standard input elsewhere
	}

	targets := map[int]io.WriterAt{}
	zeros := map[int]bool{}
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	groups := map[string]*throttle{}
	for _, d := range h.Devices {
		if d.IsVMState() {
			path := filepath.Join(rd.dir, d.FileName())
			f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil {
				return fmt.Errorf("create vmstate file '%s' failed: %w", path, err)
			}
			rd.add(path)
			files = append(files, f)
			if err := f.Truncate(d.Size); err != nil {
				return err
			}
			targets[d.ID] = f
			continue
		}
		if job.drives != nil && !slices.Contains(job.drives, d.Name) {
			continue
		}
		m, ok := maps[d.Name]
		if !ok {
			return fmt.Errorf("%s: no device name mapping for %s", mapName, d.Name)
		}
		if m.skip {
			continue
		}
		f, err := openTarget(m, d)
		if err != nil {
			return fmt.Errorf("%s: %w", mapName, err)
		}
		files = append(files, f)
		targets[d.ID], zeros[d.ID] = f, m.writeZeros
		// As QEMU's throttling: a limit without a group is the target's
		// own; a group's limit is the last one given for it.
		group := m.group
		if m.bps > 0 && group == "" {
			group = "\x00" + m.path
		}
		if group != "" {
			t := groups[group]
			if t == nil {
				t = &throttle{}
				groups[group] = t
			}
			if m.bps > 0 {
				t.bps = m.bps
			}
			targets[d.ID] = throttledTarget{f, t, ctx}
		}
	}

	if job.stats != nil {
		if err := job.stats.attach(a.reader); err != nil {
			return err
		}
		defer job.stats.stop()
	}
	if err := vma.Extract(ctx, a.reader, targets, vma.WithWriteZerosTo(zeros)); err != nil {
		return a.wrap(err)
	}
	for _, f := range files {
		if err := syncFile(f); err != nil {
			return fmt.Errorf("syncing %s: %w", f.Name(), err)
		}
	}
	if job.stats != nil {
		job.stats.summary()
	}
	rd.keep()
	return nil
}

// writeConfigs creates dir, which must not exist, with the archive's
// configs in it, all at once.
func writeConfigs(ctx context.Context, a *archiveInput, dir string, warn io.Writer) (*restoreDir, error) {
	h := a.reader.Header()
	var names []string
	for _, c := range h.Configs {
		names = append(names, c.Name)
	}
	set, err := newOutputSet(dir, names, true, false, warn)
	if err != nil {
		return nil, err
	}
	for _, c := range h.Configs {
		f, err := set.create(c.Name)
		if err == nil {
			_, err = f.Write(c.Data)
		}
		if err != nil {
			set.abort()
			return nil, a.outputErr(fmt.Sprintf("config %q", c.Name), c.NameOffset(), err)
		}
	}
	if err := set.commit(ctx); err != nil {
		return nil, err
	}
	rd := &restoreDir{dir: set.dir}
	for _, n := range names {
		rd.add(filepath.Join(set.dir, n))
	}
	track(rd)
	return rd, nil
}

// openTarget opens the file or block device m names for disk d, after
// checking that vmatool can write it the way vma would.
func openTarget(m restoreMap, d vma.Device) (*os.File, error) {
	if p, ok := qemuProtocol(m.path); ok {
		return nil, fmt.Errorf("%s: target %q is for QEMU's %s block driver; vmatool writes to files and block devices only", d.Name, m.path, p)
	}
	switch m.format {
	case "", "raw":
	default:
		return nil, fmt.Errorf("%s: target %s: format=%s; vmatool writes raw targets only", d.Name, m.path, m.format)
	}
	f, err := os.OpenFile(m.path, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: can't open target: %w", d.Name, err)
	}
	size, err := targetSize(f)
	if err == nil && m.format == "" {
		// vma lets QEMU guess the format of a target that neither ends
		// in .raw nor is under /dev/; the only other format a restore
		// would find there is an image that a raw write would destroy.
		if !strings.HasSuffix(m.path, ".raw") && !strings.HasPrefix(m.path, "/dev/") {
			if id, derr := recipe.Identify(m.path); derr != nil {
				err = derr
			} else if id.Format != recipe.FormatRaw {
				err = fmt.Errorf("holds a %s image; vmatool writes raw targets only", id.Format)
			}
		}
	}
	if err == nil {
		// As vma: storages round volume sizes up, by up to 4 MiB.
		if diff := size - d.Size; diff < 0 || diff > 4<<20 {
			err = fmt.Errorf("unexpected size %d, want %d (or up to 4 MiB more)", size, d.Size)
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: target %s: %w", d.Name, m.path, err)
	}
	return f, nil
}

// targetSize returns the size of a regular file or block device, and
// refuses anything else.
func targetSize(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	mode := st.Mode()
	if !mode.IsRegular() && (mode&fs.ModeDevice == 0 || mode&fs.ModeCharDevice != 0) {
		return 0, errors.New("not a regular file or block device")
	}
	// A block device's size is where its end is.
	return f.Seek(0, io.SeekEnd)
}

// qemuProtocol reports whether path names a QEMU block driver rather than
// a file ("rbd:pool/image:conf=...", "iscsi://...", "nbd:host:port"), as
// QEMU reads it: a prefix before ':' without a path separator. One letter
// is a Windows drive, not a protocol.
func qemuProtocol(path string) (string, bool) {
	i := strings.IndexByte(path, ':')
	if i < 2 || strings.ContainsAny(path[:i], `/\`) {
		return "", false
	}
	return path[:i], true
}

// throttle limits the bytes per second written through it, for the
// targets of one throttling group.
type throttle struct {
	mu   sync.Mutex
	bps  uint64 // 0: no limit
	next time.Time
}

// wait returns when n more bytes may be written: each write is paid for
// in time before the next may start.
func (t *throttle) wait(ctx context.Context, n int) error {
	t.mu.Lock()
	if t.bps == 0 {
		t.mu.Unlock()
		return nil
	}
	now := time.Now()
	if t.next.Before(now) {
		t.next = now
	}
	d := t.next.Sub(now)
	t.next = t.next.Add(time.Duration(float64(n) / float64(t.bps) * float64(time.Second)))
	t.mu.Unlock()
	if d <= 0 {
		return nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type throttledTarget struct {
	io.WriterAt
	t   *throttle
	ctx context.Context
}

func (w throttledTarget) WriteAt(p []byte, off int64) (int, error) {
	if err := w.t.wait(w.ctx, len(p)); err != nil {
		return 0, err
	}
	return w.WriterAt.WriteAt(p, off)
}
