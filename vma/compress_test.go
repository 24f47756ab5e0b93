package vma_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/vmatool/vmatool/vma"
)

// compressedArchive packs a 12 MiB disk of random, text-like and zero
// blocks and compresses the archive as vmatool does (independent 2 MiB
// zstd frames); it returns the disk, the plain archive and the zstd one.
func compressedArchive(t *testing.T) (disk, plain, zst []byte) {
	t.Helper()
	disk = randomDisk(rand.New(rand.NewPCG(11, 12)), 12<<20, "mixed")
	var out bytes.Buffer
	w, err := vma.NewWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	w.AddDevice("drive-scsi0", int64(len(disk)))
	if err := w.WriteDisk(context.Background(), 1, memDisk{disk}, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	zw, err := vma.Compress(&z, vma.Zstd)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(out.Bytes())
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return disk, out.Bytes(), z.Bytes()
}

// An archive compressed by Compress reads back through Decompress, the
// frames decoded in parallel and used in place: Extract writes the disk,
// Verify agrees with the plain archive.
func TestCompressedRoundTrip(t *testing.T) {
	disk, plain, zst := compressedArchive(t)
	open := func(b []byte) (*vma.Reader, func()) {
		dr, c, err := vma.Decompress(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		r, err := vma.NewReader(dr)
		if err != nil {
			t.Fatal(err)
		}
		if want := vma.Zstd; c != want && !bytes.Equal(b, plain) {
			t.Fatalf("compression %q, want %q", c, want)
		}
		return r, func() { dr.Close() }
	}

	r, done := open(zst)
	tgt := &memTarget{b: make([]byte, len(disk))}
	if err := vma.Extract(context.Background(), r, map[int]io.WriterAt{1: tgt}); err != nil {
		t.Fatal(err)
	}
	done()
	if !bytes.Equal(tgt.b, disk) {
		t.Fatal("the disk extracted from the zstd archive differs")
	}

	var stats []string
	for _, b := range [][]byte{plain, zst} {
		r, done := open(b)
		st, err := vma.Verify(context.Background(), r)
		done()
		if err != nil {
			t.Fatal(err)
		}
		stats = append(stats, fmt.Sprint(st.ArchiveSize, st.Extents, st.Devices))
	}
	if stats[0] != stats[1] {
		t.Errorf("Verify of the plain archive: %s; of the zstd one: %s", stats[0], stats[1])
	}
}

// A damaged frame in the middle of a compressed archive fails Verify and
// Extract with an error that names the frame's offset in the compressed
// stream, and Extract has written the disk up to the extents before it.
func TestCompressedArchiveBadFrame(t *testing.T) {
	disk, plain, zst := compressedArchive(t)
	// Each frame holds 2 MiB of the archive and starts with the zstd
	// magic; these seeds put the magic nowhere else.
	magic := []byte{0x28, 0xb5, 0x2f, 0xfd}
	var starts []int
	for off := 0; ; {
		i := bytes.Index(zst[off:], magic)
		if i < 0 {
			break
		}
		starts = append(starts, off+i)
		off += i + 1
	}
	if want := (len(plain) + 2<<20 - 1) / (2 << 20); len(starts) != want {
		t.Fatalf("%d zstd magics in the stream, want one per frame, %d", len(starts), want)
	}
	bad := bytes.Clone(zst)
	mid := starts[2] + (starts[3]-starts[2])/2
	bad[mid] ^= 0xff
	bad[mid+1] ^= 0x55
	want := fmt.Sprintf("frame at offset %d:", starts[2])

	for _, op := range []string{"verify", "extract"} {
		dr, _, err := vma.Decompress(bytes.NewReader(bad))
		if err != nil {
			t.Fatal(err)
		}
		r, err := vma.NewReader(dr)
		if err != nil {
			t.Fatal(err)
		}
		tgt := &memTarget{b: make([]byte, len(disk))}
		if op == "verify" {
			_, err = vma.Verify(context.Background(), r)
		} else {
			err = vma.Extract(context.Background(), r, map[int]io.WriterAt{1: tgt})
		}
		dr.Close()
		if err == nil {
			t.Fatalf("%s of a damaged archive passed", op)
		}
		if !strings.Contains(err.Error(), want) || errors.Is(err, vma.ErrShortExtent) {
			t.Fatalf("%s: %v; want an error naming the %s", op, err, want)
		}
		if op == "extract" {
			// Two whole frames (4 MiB of archive) came before the damage,
			// so the first 3 MiB of the disk is surely written.
			if !bytes.Equal(tgt.b[:3<<20], disk[:3<<20]) {
				t.Errorf("extract: the disk before the damaged frame was not written intact")
			}
		}
	}
}

// A compressed archive cut in the middle of a frame fails as the plain
// archive cut after the last whole frame does, with the same offset: the
// frames decoded before the cut all reach the Reader, however far the
// decoder had run ahead when it found the end. Extract has written the
// disk up to there.
func TestCompressedArchiveCutMidFrame(t *testing.T) {
	disk, plain, zst := compressedArchive(t)
	magic := []byte{0x28, 0xb5, 0x2f, 0xfd}
	var starts []int
	for off := 0; ; {
		i := bytes.Index(zst[off:], magic)
		if i < 0 {
			break
		}
		starts = append(starts, off+i)
		off += i + 1
	}
	const whole = 3 // frames before the cut
	cut := zst[:starts[whole]+(starts[whole+1]-starts[whole])/2]
	for _, op := range []string{"verify", "extract"} {
		run := func(in io.Reader) (error, []byte) {
			r, err := vma.NewReader(in)
			if err != nil {
				t.Fatal(err)
			}
			tgt := &memTarget{b: make([]byte, len(disk))}
			if op == "verify" {
				_, err = vma.Verify(context.Background(), r)
			} else {
				err = vma.Extract(context.Background(), r, map[int]io.WriterAt{1: tgt})
			}
			return err, tgt.b
		}
		wantErr, _ := run(bytes.NewReader(plain[:whole*2<<20]))
		dr, _, err := vma.Decompress(bytes.NewReader(cut))
		if err != nil {
			t.Fatal(err)
		}
		gotErr, got := run(slowChunks{dr.(chunker)})
		dr.Close()
		if gotErr == nil || wantErr == nil {
			t.Fatalf("%s: a cut archive passed: %v, %v", op, gotErr, wantErr)
		}
		// The plain stream ends cleanly where the compressed one breaks.
		want := strings.Replace(wantErr.Error(), "EOF", "", 1)
		if gotText := strings.Replace(gotErr.Error(), "EOF", "", 1); gotText != want {
			t.Errorf("%s: %v\nwant as the plain archive cut after the whole frames: %v", op, gotErr, wantErr)
		}
		if op == "extract" {
			if n := 5 << 20; !bytes.Equal(got[:n], disk[:n]) {
				t.Errorf("extract: the disk before the cut was not written intact")
			}
		}
	}
}

// chunker is codec.ChunkReader, which this package's tests cannot name.
type chunker interface {
	io.Reader
	Chunk() ([]byte, error)
}

// slowChunks hands the decoder's pieces on after a pause, so that the
// decoder runs ahead to the end of its input while frames wait.
type slowChunks struct{ chunker }

func (s slowChunks) Chunk() ([]byte, error) {
	b, err := s.chunker.Chunk()
	time.Sleep(2 * time.Millisecond)
	return b, err
}

func (s slowChunks) Close() error { return nil }
