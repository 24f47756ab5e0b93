package main

import (
	"fmt"
	"strconv"
	"strings"
)

const (
	kiB = 1 << 10
	miB = 1 << 20
	giB = 1 << 30
	tiB = 1 << 40
)

// parseSize reads sizes as people type them for disks: 64M, 1G, 64GiB,
// 1.5G, or plain bytes. Suffixes are binary (1G = 2^30), as qemu-img's are,
// because disk images are sized in powers of two.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "i")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k', 'K':
			mult = kiB
		case 'm', 'M':
			mult = miB
		case 'g', 'G':
			mult = giB
		case 't', 'T':
			mult = tiB
		}
		if mult != 1 {
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || v*float64(mult) >= 1<<62 {
		return 0, fmt.Errorf("bad size %q (want e.g. 64M, 1G, 64G)", s)
	}
	n := int64(v * float64(mult))
	if n%512 != 0 {
		// VMA devices are whole sectors; anything else could not be packed.
		return 0, fmt.Errorf("size %q is not a multiple of 512 bytes", s)
	}
	return n, nil
}

// formatBytes prints n with a binary unit and three significant digits.
func formatBytes(n int64) string {
	units := []struct {
		size int64
		name string
	}{{tiB, "TiB"}, {giB, "GiB"}, {miB, "MiB"}, {kiB, "KiB"}}
	for _, u := range units {
		if n >= u.size {
			return strconv.FormatFloat(float64(n)/float64(u.size), 'g', 3, 64) + " " + u.name
		}
	}
	return strconv.FormatInt(n, 10) + " B"
}
