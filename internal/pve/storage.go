package pve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	proxmox "github.com/luthermonson/go-proxmox"
)

// Storage is a storage as a node sees it.
type Storage struct {
	Name    string
	Node    string
	Type    string   // plugin type: "dir", "lvmthin", "zfspool", ...
	Content []string // "images", "import", "backup", "iso", ...
	Total   uint64   // bytes
	Used    uint64
	Avail   uint64
	Active  bool
	Enabled bool
	Shared  bool
}

// Holds reports whether the storage takes content of the given type.
func (s Storage) Holds(content string) bool { return slices.Contains(s.Content, content) }

func splitContent(s string) []string {
	var out []string
	for _, c := range strings.Split(s, ",") {
		if c = strings.TrimSpace(c); c != "" {
			out = append(out, c)
		}
	}
	return out
}

func storageOf(node string, s *proxmox.Storage) Storage {
	return Storage{Name: s.Name, Node: node, Type: s.Type, Content: splitContent(s.Content),
		Total: s.Total, Used: s.Used, Avail: s.Avail, Active: s.Active == 1, Enabled: s.Enabled == 1, Shared: s.Shared == 1}
}

// Storages lists the storages of node with their content types and space.
func (c *Client) Storages(ctx context.Context, node string) ([]Storage, error) {
	if err := checkName("node", node); err != nil {
		return nil, err
	}
	var ss proxmox.Storages
	err := c.call(ctx, "GET /nodes/"+node+"/storage", func(ctx context.Context) (err error) {
		ss, err = c.api.NodeRef(node).Storages(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]Storage, 0, len(ss))
	for _, s := range ss {
		out = append(out, storageOf(node, s))
	}
	return out, nil
}

// StorageStatus returns one storage of node.
func (c *Client) StorageStatus(ctx context.Context, node, storage string) (*Storage, error) {
	if err := errors.Join(checkName("node", node), checkName("storage", storage)); err != nil {
		return nil, err
	}
	ref := c.api.NodeRef(node).StorageRef(storage)
	err := c.call(ctx, "GET /nodes/"+node+"/storage/"+storage+"/status", func(ctx context.Context) error { return ref.Ping(ctx) })
	if err != nil {
		return nil, err
	}
	s := storageOf(node, ref)
	s.Name = storage
	return &s, nil
}

// Volume is one entry of a storage's content list.
type Volume struct {
	VolID   string `json:"volid"`   // e.g. "local:import/nixos.qcow2"
	Content string `json:"content"` // "backup", "images", "import", "iso", ...
	Format  string `json:"format"`  // e.g. "vma.zst", "qcow2"
	Size    uint64 `json:"size"`    // bytes
	CTime   int64  `json:"ctime"`   // Unix time
	VMID    int    `json:"vmid"`
}

// StorageContent lists the volumes of storage on node. content, if not
// empty, filters by type ("backup", "import", ...).
//
// It uses the generic Get: go-proxmox's Storage.GetContent has no filter
// and drops each volume's content type.
func (c *Client) StorageContent(ctx context.Context, node, storage, content string) ([]Volume, error) {
	if err := errors.Join(checkName("node", node), checkName("storage", storage)); err != nil {
		return nil, err
	}
	path := "/nodes/" + node + "/storage/" + storage + "/content"
	if content != "" {
		path += "?" + url.Values{"content": {content}}.Encode()
	}
	var vols []Volume
	if err := c.call(ctx, "GET "+path, func(ctx context.Context) error { return c.api.Get(ctx, path, &vols) }); err != nil {
		return nil, err
	}
	return vols, nil
}

// DeleteVolume starts deleting the volume volid (e.g.
// "local:import/nixos.qcow2") from storage on node and returns the task.
func (c *Client) DeleteVolume(ctx context.Context, node, storage, volid string) (UPID, error) {
	if err := errors.Join(checkName("node", node), checkName("storage", storage)); err != nil {
		return UPID{}, err
	}
	if volid == "" {
		return UPID{}, errors.New("pve: DeleteVolume: empty volume ID")
	}
	what := "DELETE /nodes/" + node + "/storage/" + storage + "/content/" + volid
	var t *proxmox.Task
	err := c.call(ctx, what, func(ctx context.Context) (err error) {
		// The volume ID is one path segment: its "/" travels as %2F.
		t, err = c.api.NodeRef(node).StorageRef(storage).DeleteContent(ctx, url.PathEscape(volid))
		return err
	})
	if err != nil {
		return UPID{}, err
	}
	return taskOf(what, t)
}

// Upload is a file to send to a storage.
type Upload struct {
	Content  string    // "import" (disk images, .ova), "iso" or "vztmpl"
	Filename string    // the name on the storage, e.g. "nixos.qcow2"
	Body     io.Reader // exactly Size bytes
	Size     int64
	// Checksum, if set, is verified by the upload task.
	Checksum          string
	ChecksumAlgorithm string // "sha256", "sha512", "md5", ...
	// Progress, if set, is called with the bytes sent so far.
	Progress func(sent int64)
}

// Upload sends a file to storage on node (POST
// /nodes/{node}/storage/{storage}/upload) and returns the task that moves
// it into place; wait for it before using the file. The node stages the
// file under /var/tmp first, so it needs room for it twice.
//
// go-proxmox writes the multipart body as pveproxy wants it (content,
// checksum-algorithm, checksum, then the file part named "filename"),
// with a Content-Length and no chunking. Its UploadReader takes no
// context, so the body fails once ctx is done, even while its source
// blocks, and the request is bound to ctx too, which also ends a send
// stalled on a full socket.
func (c *Client) Upload(ctx context.Context, node, storage string, u Upload) (UPID, error) {
	if err := errors.Join(checkName("node", node), checkName("storage", storage)); err != nil {
		return UPID{}, err
	}
	if u.Filename == "" || strings.ContainsAny(u.Filename, "/\"\r\n") || u.Body == nil || u.Size < 0 {
		return UPID{}, fmt.Errorf("pve: Upload: need a plain file name, a body and its size (got %q)", u.Filename)
	}
	fields := map[string]string{"content": u.Content}
	if u.Checksum != "" || u.ChecksumAlgorithm != "" {
		fields["checksum"], fields["checksum-algorithm"] = u.Checksum, u.ChecksumAlgorithm
	}
	// Ending ctx when Upload returns also ends the body's goroutine.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(errUploadDone)
	api := c.newAPI(proxmox.WithRequestInterceptor(func(r *http.Request) error {
		*r = *r.WithContext(ctx)
		return nil
	}))
	path := "/nodes/" + node + "/storage/" + storage + "/upload"
	body := &cancelReader{ctx: ctx, r: u.Body, progress: u.Progress}
	var s string
	err := api.UploadReader(path, fields, u.Filename, body, u.Size, &s)
	if err != nil {
		if cerr := context.Cause(ctx); cerr != nil && cerr != errUploadDone {
			return UPID{}, fmt.Errorf("pve: uploading %s after %d bytes: %w", u.Filename, body.n.Load(), cerr)
		}
		return UPID{}, c.wrap("POST "+path, err)
	}
	return upidOf("POST "+path, s)
}

// errUploadDone ends an upload's context once Upload has returned.
var errUploadDone = errors.New("pve: upload finished")

// cancelReader fails once its context is done, also while the source's
// Read is blocked: the source is read on a goroutine of its own, which
// ends when ctx is done and the source's pending Read returns.
type cancelReader struct {
	ctx      context.Context
	r        io.Reader
	n        atomic.Int64
	progress func(int64)

	once   sync.Once
	chunks chan chunk
	free   chan []byte
	cur    []byte // the chunk being handed out, and its unread part
	rest   []byte
	err    error
}

type chunk struct {
	b   []byte
	err error
}

// pump reads the source into two alternating buffers.
func (r *cancelReader) pump() {
	for {
		var buf []byte
		select {
		case buf = <-r.free:
		case <-r.ctx.Done():
			return
		}
		n, err := r.r.Read(buf)
		select {
		case r.chunks <- chunk{buf[:n], err}:
		case <-r.ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

func (r *cancelReader) Read(p []byte) (int, error) {
	r.once.Do(func() {
		r.chunks, r.free = make(chan chunk), make(chan []byte, 2)
		r.free <- make([]byte, 64<<10)
		r.free <- make([]byte, 64<<10)
		go r.pump()
	})
	for len(r.rest) == 0 {
		if err := context.Cause(r.ctx); err != nil {
			return 0, err
		}
		if r.err != nil {
			return 0, r.err
		}
		if r.cur != nil {
			r.free <- r.cur[:cap(r.cur)]
			r.cur = nil
		}
		select {
		case <-r.ctx.Done():
			return 0, context.Cause(r.ctx)
		case c := <-r.chunks:
			r.cur, r.rest, r.err = c.b, c.b, c.err
		}
	}
	if err := context.Cause(r.ctx); err != nil {
		return 0, err
	}
	n := copy(p, r.rest)
	r.rest = r.rest[n:]
	sent := r.n.Add(int64(n))
	if r.progress != nil {
		r.progress(sent)
	}
	return n, nil
}
