package main

// What "vmatool create" accepts because Proxmox's "vma create" does.

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/vmatool/vmatool/vma"
)

// vmaWarning prints a warning the way vma's GLib log handler does,
// "<program>: warning: <message>", under the name vmatool was started as
// (streams.programName): run as "vma" (a link that lets Proxmox's scripts
// call it), it says "vma".
func vmaWarning(s *streams, format string, args ...any) {
	fmt.Fprintf(s.err, "%s: warning: %s\n", s.programName(), fmt.Sprintf(format, args...))
}

// programName is the name vmatool was started as: the last element of
// argv[0], without Windows's .exe.
func programName(argv0 string) string {
	return strings.TrimSuffix(filepath.Base(argv0), ".exe")
}

// appendConfig adds c to cfgs, except when the same config (same name,
// same bytes) is there already: vma create stores a file given twice
// twice, but an archive with two configs of one name cannot be extracted
// without one overwriting the other, so vmatool refuses such archives and
// stores the config once. Two different configs of one name are still
// refused, by the writer.
func appendConfig(cfgs []vma.Config, c vma.Config) []vma.Config {
	for _, have := range cfgs {
		if have.Name == c.Name && bytes.Equal(have.Data, c.Data) {
			return cfgs
		}
	}
	return append(cfgs, c)
}

// warnPositionalDevice is vma create's warning for a device given without
// -d format=..., word for word.
func warnPositionalDevice(s *streams, spec string) {
	vmaWarning(s, "Specifying a device without a format is deprecated - use '-d format=<format>:%s'", spec)
}
