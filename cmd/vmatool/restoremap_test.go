package main

import (
	"bytes"
	"fmt"
	"github.com/vmatool/vmatool/qcow2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseMapLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		want restoreMap
		err  string
	}{
		// qemu-server's lines
		{line: "format=raw:0:drive-scsi0=/dev/pve/vm-100-disk-0",
			want: restoreMap{devname: "drive-scsi0", path: "/dev/pve/vm-100-disk-0", format: "raw"}},
		{line: "throttling.bps=1048576:throttling.group=local-lvm:format=raw:1:drive-efidisk0=/dev/pve/vm-100-disk-1",
			want: restoreMap{devname: "drive-efidisk0", path: "/dev/pve/vm-100-disk-1", format: "raw", bps: 1048576, group: "local-lvm", writeZeros: true}},
		// options in any order; the path keeps its ':' and '='
		{line: "cache=unsafe:throttling.bps=0x100:format=raw:0:d=/a:b=c",
			want: restoreMap{devname: "d", path: "/a:b=c", format: "raw", bps: 256, cache: "unsafe"}},
		{line: "1:drive-virtio0=disk.raw", want: restoreMap{devname: "drive-virtio0", path: "disk.raw", writeZeros: true}},
		{line: "skip=drive-scsi1", want: restoreMap{devname: "drive-scsi1", skip: true}},
		// vma's refusals
		{line: "skip", err: "read map failed - option 'skip' has no value ('skip')"},
		{line: "skipper=x", err: "option 'skip' has no value"},
		{line: "format=raw:format=raw:0:d=x", err: "read map failed - duplicate value for option 'format'"},
		{line: "format=raw", err: "read map failed - option 'format' not terminated ('format=raw')"},
		{line: "throttling.bps=fast:0:d=x", err: "read map failed - not a number: fast"},
		{line: "throttling.bps=1_000:0:d=x", err: "not a number: 1_000"},
		{line: "cache=sometimes:0:d=x", err: "invalid cache option: sometimes"},
		{line: "format=raw:2:d=x", err: "read map failed - parse error ('format=raw:2:d=x')"},
		{line: "format=raw:0:/dev/sda", err: "read map failed - no dev name specified ('format=raw:0:/dev/sda')"},
		{line: "0:=x", err: "no dev name specified"},
	} {
		got, err := parseMapLine(tc.line)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want %q", tc.line, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.line, err)
		case tc.err == "" && got != tc.want:
			t.Errorf("%q: %+v, want %+v", tc.line, got, tc.want)
		}
	}
}

func TestReadMap(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string // devnames read
		err  string
	}{
		{in: "0:a=x\n1:b=y\ndone\n0:c=z\n", want: []string{"a", "b"}},
		{in: "0:a=x\n\n0:c=z\n", want: []string{"a"}},
		{in: "0:a=x\n0:b=y", want: []string{"a", "b"}},
		{in: "0:a=x\ndone", want: []string{"a"}},
		{in: "", want: nil},
		{in: "0:a=" + strings.Repeat("x", maxMapLine) + "\ndone\n", err: "longer than 8191 bytes"},
		{in: "0:a=x\nbogus\ndone\n", err: "parse error ('bogus')"},
	} {
		m, err := readMap(strings.NewReader(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%.40q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || len(m) != len(tc.want) {
			t.Errorf("%.40q: %v, %v; want %v", tc.in, m, err, tc.want)
			continue
		}
		for _, n := range tc.want {
			if _, ok := m[n]; !ok {
				t.Errorf("%.40q: no line for %s", tc.in, n)
			}
		}
	}
	// A line of exactly 8191 bytes is read.
	line := "0:a=" + strings.Repeat("x", maxMapLine-4)
	if m, err := readMap(strings.NewReader(line + "\ndone\n")); err != nil || len(m["a"].path) != maxMapLine-4 {
		t.Errorf("8191-byte line: %v", err)
	}
}

// What extract -r refuses, with the map in a plain file (vma reads any
// file): one line naming the problem, exit 1, TMPDIR gone, targets
// untouched.
func TestExtractRestoreRefusals(t *testing.T) {
	archive := filepath.Join(vectorDir, "v02-two-disks.vma")
	const efi, scsi = 540672, 1048576
	for _, tc := range []struct {
		name      string
		efi, scsi string // map lines; VOL is the volume's path
		efiSize   int64
		want      string
	}{
		{"iscsi target", "0:drive-efidisk0=VOL", "0:drive-scsi0=iscsi://10.0.0.1/iqn.2003-01.org:t/0", efi,
			`drive-scsi0: target "iscsi://10.0.0.1/iqn.2003-01.org:t/0" is for QEMU's iscsi block driver; vmatool writes to files and block devices only`},
		{"qcow2 format", "format=qcow2:0:drive-efidisk0=VOL", "0:drive-scsi0=VOL", efi, "format=qcow2; vmatool writes raw targets only"},
		{"qcow2 image", "0:drive-efidisk0=QCOW2", "0:drive-scsi0=VOL", efi, "holds a qcow2 image; vmatool writes raw targets only"},
		{"volume too small", "format=raw:0:drive-efidisk0=VOL", "0:drive-scsi0=VOL", efi - 512, "unexpected size 540160, want 540672 (or up to 4 MiB more)"},
		{"volume too large", "format=raw:0:drive-efidisk0=VOL", "0:drive-scsi0=VOL", efi + 4<<20 + 512, "unexpected size 4735488, want 540672"},
		{"missing volume", "format=raw:0:drive-efidisk0=NOPE", "0:drive-scsi0=VOL", efi, "drive-efidisk0: can't open target: open NOPE"},
		{"directory", "format=raw:0:drive-efidisk0=DIR", "0:drive-scsi0=VOL", efi, "drive-efidisk0: can't open target: open DIR"},
		{"no mapping", "", "0:drive-scsi0=VOL", efi, "no device name mapping for drive-efidisk0"},
		{"parse error", "format=raw:x:drive-efidisk0=VOL", "0:drive-scsi0=VOL", efi, "read map failed - parse error ('format=raw:x:drive-efidisk0="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			vol := func(name string, size int64) string {
				p := filepath.Join(dir, name)
				writeFile(t, p, bytes.Repeat([]byte{7}, int(size)))
				return p
			}
			efiVol, scsiVol := vol("efi.raw", tc.efiSize), vol("scsi.raw", scsi)
			qcow := writeFile(t, filepath.Join(dir, "q.img"), append([]byte(qcow2.Magic), make([]byte, efi-4)...))
			sub := func(line, v string) string {
				r := strings.NewReplacer("VOL", v, "QCOW2", qcow, "NOPE", filepath.Join(dir, "nope"), "DIR", dir)
				return r.Replace(line)
			}
			mapFile := writeFile(t, filepath.Join(dir, "map"), []byte(fmt.Sprintf("%s\n%s\ndone\n", sub(tc.efi, efiVol), sub(tc.scsi, scsiVol))))
			want := strings.NewReplacer("NOPE", filepath.Join(dir, "nope"), "DIR", dir).Replace(tc.want)
			before := fileSHA(t, efiVol) + fileSHA(t, scsiVol)
			tmp := filepath.Join(dir, "tmp")
			r := runInProcess(t, nil, nil, "extract", "-v", "-r", mapFile, archive, tmp)
			if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, want) {
				t.Errorf("exit %d, stderr %q; want 1 and one line with %q", r.code, r.stderr, want)
			}
			assertGone(t, tmp)
			if fileSHA(t, efiVol)+fileSHA(t, scsiVol) != before {
				t.Error("a volume was written")
			}
			if !strings.HasSuffix(r.stdout, "CTIME: Sat Nov 21 21:13:04 2026\n") {
				t.Errorf("stdout %q", r.stdout)
			}
		})
	}
	t.Run("existing TMPDIR", func(t *testing.T) {
		dir := t.TempDir()
		mapFile := writeFile(t, filepath.Join(dir, "map"), []byte("done\n"))
		r := runInProcess(t, nil, nil, "extract", "-r", mapFile, archive, dir)
		if r.code != 1 || !strings.Contains(r.stderr, "unable to create target directory") || r.stdout != "" {
			t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		if _, err := os.Stat(dir); err != nil {
			t.Error("the existing directory was removed")
		}
	})
}
