package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/vmatool/vmatool/vma"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1024": 1024, "8M": 8 << 20, "8m": 8 << 20, "128MiB": 128 << 20, "128mb": 128 << 20,
		"1K": 1 << 10, "3G": 3 << 30, "2T": 2 << 40, " 16M ": 16 << 20,
		"": 0, "M": 0, "0": 0, "-8M": 0, "12x": 0, "8MM": 0, "1.5G": 0, "99999999999T": 0,
	} {
		got, err := parseSize(in)
		if want == 0 {
			if err == nil {
				t.Errorf("parseSize(%q) = %d, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	var w maxWindow
	if err := w.Set("512"); err == nil {
		t.Error("--max-window 512 was accepted: below zstd's smallest window")
	}
	if w.String() != "8M" {
		t.Errorf("default shows as %q, want 8M", w.String())
	}
}

func TestWindowHint(t *testing.T) {
	for window, flag := range map[int64]string{128 << 20: "128M", 100000123: "96M", 2 << 40: "2T", 1<<30 + 1: "1025M"} {
		err := fmt.Errorf("wrapped: %w", &vma.WindowError{Window: window, Limit: vma.DefaultMaxWindow})
		got := windowHint(err)
		if !strings.Contains(got.Error(), "--max-window "+flag+" ") || !errors.Is(got, vma.ErrWindowTooLarge) {
			t.Errorf("window %d: %q, want a hint of --max-window %s", window, got, flag)
		}
		var w maxWindow
		if err := w.Set(flag); err != nil || int64(w) < window {
			t.Errorf("the hint %s does not parse to at least %d: %d, %v", flag, window, w, err)
		}
	}
	other := errors.New("other")
	if windowHint(other) != other {
		t.Error("an unrelated error was changed")
	}
}
