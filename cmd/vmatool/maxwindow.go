package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"github.com/vmatool/vmatool/vma"
)

// maxWindow is --max-window, on every command that decompresses an
// archive: the largest zstd window to decode. Zero means the library's
// default.
type maxWindow int64

func addMaxWindowFlag(fs *pflag.FlagSet, w *maxWindow) {
	fs.Var(w, "max-window", "largest zstd window to decode, e.g. 128M (decoding holds one window in memory)")
}

func (w *maxWindow) String() string {
	n := int64(*w)
	if n == 0 {
		n = vma.DefaultMaxWindow
	}
	return sizeFlagText(n)
}

func (w *maxWindow) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	if n < 1<<10 {
		return fmt.Errorf("%s is below zstd's smallest window, 1K", s)
	}
	*w = maxWindow(n)
	return nil
}

func (w *maxWindow) Type() string { return "SIZE" }

// option is the decompression option the flag stands for.
func (w *maxWindow) option() vma.DecompressOption {
	if *w == 0 {
		return vma.WithMaxWindow(vma.DefaultMaxWindow)
	}
	return vma.WithMaxWindow(int64(*w))
}

// parseSize reads a byte count with an optional binary unit: 8388608, 8M,
// 8MiB, 8mb.
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	shift := 0
	if i := strings.LastIndexAny(t, "KMGT"); i >= 0 && i == len(t)-1 {
		shift = 10 * (1 + strings.IndexByte("KMGT", t[i]))
		t = t[:i]
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > 1<<62>>shift {
		return 0, fmt.Errorf("%q is not a size (a number of bytes, or with K, M, G or T)", s)
	}
	return n << shift, nil
}

// sizeFlagText writes n as --max-window would take it.
func sizeFlagText(n int64) string {
	for _, u := range []struct {
		suffix string
		shift  int
	}{{"T", 40}, {"G", 30}, {"M", 20}, {"K", 10}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// windowHint adds to an archive refused for its zstd window the option
// that reads it.
func windowHint(err error) error {
	var we *vma.WindowError
	if !errors.As(err, &we) {
		return err
	}
	need := (we.Window + 1<<20 - 1) &^ (1<<20 - 1)
	return fmt.Errorf("%w (--max-window %s reads it, with memory to match)", err, sizeFlagText(need))
}
