package main

import (
	"fmt"
	"os/exec"
	"strings"
)

// qcow2Paths names the two qcow2 copies of a raw image: base.qcow2 is
// zlib-compressed (as image builders ship them), base-plain.qcow2 is not.
func qcow2Paths(rawPath string) (zlib, plain string) {
	base := strings.TrimSuffix(strings.TrimSuffix(rawPath, ".raw"), ".img")
	return base + ".qcow2", base + "-plain.qcow2"
}

// makeQcow2 converts a raw image with qemu-img; compressed selects -c.
// qemu-img keeps holes and zero clusters unallocated either way, so the
// qcow2 has the same data map as the raw file.
func makeQcow2(rawPath, out string, compressed bool) error {
	args := []string{"convert", "-f", "raw", "-O", "qcow2"}
	if compressed {
		args = append(args, "-c")
	}
	args = append(args, rawPath, out)
	if b, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("qemu-img %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(b)))
	}
	return nil
}
