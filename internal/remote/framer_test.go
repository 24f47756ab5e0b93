package remote

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestFramer(t *testing.T) {
	for _, size := range []int{0, 1, chunkSize - 1, chunkSize, 2*chunkSize + 5} {
		data := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
		var want bytes.Buffer
		for rest := data; len(rest) > 0; {
			n := min(len(rest), chunkSize)
			fmt.Fprintf(&want, "D %d\n", n)
			want.Write(rest[:n])
			rest = rest[n:]
		}
		fmt.Fprintf(&want, "E %d\n", size)

		for _, how := range []string{"WriteTo", "Read"} {
			t.Run(fmt.Sprintf("%s/%d", how, size), func(t *testing.T) {
				var last int64
				f := &framer{
					r:        iotest.HalfReader(bytes.NewReader(data)),
					buf:      make([]byte, headerRoom+chunkSize),
					progress: func(n int64) { last = n },
				}
				var got bytes.Buffer
				var err error
				if how == "WriteTo" {
					_, err = f.WriteTo(&got)
				} else {
					_, err = io.Copy(&got, struct{ io.Reader }{f})
				}
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got.Bytes(), want.Bytes()) {
					t.Errorf("frames differ (got %d bytes, want %d)", got.Len(), want.Len())
				}
				if last != int64(size) {
					t.Errorf("last progress = %d, want %d", last, size)
				}
			})
		}
	}
}

func TestFramerReadError(t *testing.T) {
	boom := errors.New("boom")
	f := &framer{r: iotest.ErrReader(boom), buf: make([]byte, headerRoom+chunkSize)}
	var got bytes.Buffer
	if _, err := f.WriteTo(&got); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	if strings.Contains(got.String(), "E ") {
		t.Errorf("end frame sent after a read error: %q", got.String())
	}
}

func TestTailBuffer(t *testing.T) {
	tb := &tailBuffer{max: 8}
	io.WriteString(tb, "hello ")
	io.WriteString(tb, "world, bye")
	if got := tb.String(); got != "rld, bye" {
		t.Errorf("tail = %q", got)
	}
}
