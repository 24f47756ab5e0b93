package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// PartSuffix is appended to the destination name while an upload runs.
const PartSuffix = ".part"

// chunkSize is the payload of one frame. The remote side forks one head
// per frame, so frames are large enough to make that cost vanish next to
// the transfer, and small enough to bound memory.
const chunkSize = 4 << 20

// exitExists is the status the upload script uses for "destination exists".
const exitExists = 17

// cleanupTimeout bounds the best-effort removal of a .part after a failure.
const cleanupTimeout = 10 * time.Second

// UploadOption changes how Upload behaves.
type UploadOption func(*uploadOptions)

type uploadOptions struct {
	overwrite bool
}

// Overwrite lets Upload replace an existing destination file. Without it
// an existing file makes Upload fail with ErrExists before any data moves.
func Overwrite(ok bool) UploadOption {
	return func(o *uploadOptions) { o.overwrite = ok }
}

// uploadScript receives the framed stream on stdin into $1 (the .part) and
// renames it to $2 only after the end frame arrived and the size matches.
// Every other way out, including a dropped connection (stdin just ends),
// removes the .part: the node cleans up even when the client cannot.
//
// Frames: "D <n>\n" followed by n bytes, then "E <total>\n". GNU head -c
// reads no further than n bytes from a pipe, and sh's read takes a line a
// byte at a time, so the two can share stdin.
const uploadScript = `part=$1 final=$2 overwrite=$3
trap '' PIPE
trap 'rm -f -- "$part"; exit 143' HUP INT TERM
fail() {
	rm -f -- "$part"
	printf 'upload: %s\n' "$2" >&2
	exit "$1"
}
exists() { [ "$overwrite" != 1 ] && { [ -e "$final" ] || [ -L "$final" ]; }; }
if exists; then
	printf 'upload: %s already exists\n' "$final" >&2
	exit 17
fi
: >"$part" || fail 1 "cannot create $part"
kind=
while IFS=' ' read -r kind n; do
	case $n in ''|*[!0-9]*) fail 1 "malformed frame" ;; esac
	case $kind in
	D) head -c "$n" >>"$part" || fail 1 "writing $part failed" ;;
	E) break ;;
	*) fail 1 "malformed frame" ;;
	esac
done
[ "$kind" = E ] || fail 1 "input ended before the end marker: sender gone"
size=$(wc -c <"$part") || fail 1 "cannot measure $part"
[ "$size" -eq "$n" ] || fail 1 "size mismatch: $size bytes on disk, $n sent"
if exists; then fail 17 "$final already exists"; fi
mv -f -- "$part" "$final" || fail 1 "cannot rename $part"
printf 'ok %s\n' "$n"
`

// Upload streams r to the file name in directory dir on the remote host.
// The data goes to name+PartSuffix first and is renamed to name only
// after r reached EOF and the remote side confirmed it holds exactly the
// bytes sent. On any failure (r returns an error, the connection drops,
// the remote disk fills, ctx is cancelled) the .part is removed, by the
// remote side itself and again best-effort over a fresh session, and the
// error is returned.
//
// progress, if not nil, is called with the running total of bytes handed
// to the connection; it runs on another goroutine than the caller's.
//
// If the connection drops after the rename but before the confirmation
// arrives, Upload reports an error although the file is complete.
func (c *Client) Upload(ctx context.Context, r io.Reader, dir, name string, progress func(n int64), opts ...UploadOption) error {
	var o uploadOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := checkName(name); err != nil {
		return err
	}
	if dir == "" {
		return errors.New("remote: Upload: empty directory")
	}
	final := path.Join(dir, name)
	part := final + PartSuffix
	overwrite := "0"
	if o.overwrite {
		overwrite = "1"
	}

	f := &framer{r: r, progress: progress, buf: make([]byte, headerRoom+chunkSize)}
	var stdout bytes.Buffer
	cmd := []string{"sh", "-c", uploadScript, "vmatool-upload", part, final, overwrite}
	err := c.run(ctx, "upload to "+final, cmd, f, &stdout, nil)
	if err == nil {
		total := f.total.Load()
		if got := strings.TrimSpace(stdout.String()); got != "ok "+strconv.FormatInt(total, 10) {
			err = fmt.Errorf("remote: upload to %s: unexpected confirmation %q after %d bytes", final, got, total)
		} else {
			return nil
		}
	}
	var exitErr *ExitError
	if errors.As(err, &exitErr) && exitErr.Status == exitExists {
		return fmt.Errorf("%w: %s (allow overwriting to replace it)", ErrExists, final)
	}
	c.removeQuietly(ctx, part)
	return err
}

// removeQuietly deletes path on a fresh session, even if ctx is already
// cancelled. It is a second line of defence, so its failure is ignored.
func (c *Client) removeQuietly(ctx context.Context, path string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_ = c.Remove(ctx, path)
}

// checkName refuses names that would escape dir or denote it.
func checkName(name string) error {
	switch {
	case name == "", name == ".", name == "..":
		return fmt.Errorf("remote: invalid file name %q", name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("remote: file name %q contains '/' or NUL", name)
	}
	return nil
}

// headerRoom is reserved in front of each chunk for its frame header, so
// header and payload go out in one write.
const headerRoom = 32

// framer turns r into the frame stream uploadScript expects. It reports
// read errors as they are, so Run can tell them from connection errors
// and kill the remote side instead of ending the stream cleanly.
type framer struct {
	r        io.Reader
	progress func(int64)
	buf      []byte
	pending  []byte       // frame bytes not yet handed out
	payload  int          // payload bytes in the current frame
	total    atomic.Int64 // payload bytes framed so far; read by Upload

	sent int64 // payload bytes handed out in full frames
	eof  bool  // r is exhausted; the end frame is next
	done bool  // the end frame was produced
}

// fill prepares the next frame in f.pending.
func (f *framer) fill() error {
	if f.done {
		return io.EOF
	}
	if f.eof {
		f.pending = fmt.Appendf(f.buf[:0], "E %d\n", f.total.Load())
		f.payload = 0
		f.done = true
		return nil
	}
	n, err := io.ReadFull(f.r, f.buf[headerRoom:])
	switch err {
	case nil:
	case io.EOF, io.ErrUnexpectedEOF:
		f.eof = true
		if n == 0 {
			return f.fill()
		}
	default:
		return err
	}
	hdr := fmt.Appendf(make([]byte, 0, headerRoom), "D %d\n", n)
	start := headerRoom - len(hdr)
	copy(f.buf[start:], hdr)
	f.pending = f.buf[start : headerRoom+n]
	f.payload = n
	f.total.Add(int64(n))
	return nil
}

// frameSent records a frame handed out in full.
func (f *framer) frameSent() {
	if f.payload > 0 {
		f.sent += int64(f.payload)
		if f.progress != nil {
			f.progress(f.sent)
		}
	}
	f.pending = nil
}

// Read implements io.Reader.
func (f *framer) Read(p []byte) (int, error) {
	if len(f.pending) == 0 {
		if err := f.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, f.pending)
	f.pending = f.pending[n:]
	if len(f.pending) == 0 {
		f.frameSent()
	}
	return n, nil
}

// WriteTo implements io.WriterTo so io.Copy sends whole frames without an
// extra copy.
func (f *framer) WriteTo(w io.Writer) (int64, error) {
	var written int64
	for {
		if len(f.pending) == 0 {
			if err := f.fill(); err == io.EOF {
				return written, nil
			} else if err != nil {
				return written, err
			}
		}
		n, err := w.Write(f.pending)
		written += int64(n)
		if err != nil {
			return written, err
		}
		f.frameSent()
	}
}
