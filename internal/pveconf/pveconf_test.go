package pveconf

import (
	"reflect"
	"testing"
)

func TestParseDriveName(t *testing.T) {
	for _, tc := range []struct{ in, key, dev string }{
		{"scsi0", "scsi0", "drive-scsi0"},
		{"drive-virtio1", "virtio1", "drive-virtio1"},
		{"efidisk0", "efidisk0", "drive-efidisk0"},
		{"tpmstate0", "tpmstate0", "drive-tpmstate0-backup"},
		{"drive-tpmstate0-backup", "tpmstate0", "drive-tpmstate0-backup"},
		{"scsi30", "scsi30", "drive-scsi30"},
		{"virtio15", "virtio15", "drive-virtio15"},
		{"sata5", "sata5", "drive-sata5"},
		{"ide3", "ide3", "drive-ide3"},
	} {
		key, dev, err := ParseDriveName(tc.in)
		if err != nil || key != tc.key || dev != tc.dev {
			t.Errorf("ParseDriveName(%q) = %q, %q, %v; want %q, %q", tc.in, key, dev, err, tc.key, tc.dev)
		}
	}
	for _, bad := range []string{"", "disk0", "scsi", "drive-", "scsi0;rm", "net0",
		// past what qemu-server's Drive.pm defines, or not as it spells them
		"scsi31", "virtio16", "sata6", "ide4", "efidisk1", "tpmstate1", "scsi01", "drive-scsi31"} {
		if _, _, err := ParseDriveName(bad); err == nil {
			t.Errorf("ParseDriveName(%q) succeeded", bad)
		}
	}
}

func TestEnsureMapLines(t *testing.T) {
	drives := []Drive{
		{Key: "scsi0", DevName: "drive-scsi0", Storage: "local-lvm", Size: 1 << 30},
		{Key: "efidisk0", DevName: "drive-efidisk0", Storage: "local-lvm", Size: 540672},
	}
	conf := "memory: 512\nscsi0: local-lvm:vm-100-disk-0,size=1G\n#qmdump#map:scsi0:drive-scsi0:other::\n[snap]\nefidisk0: x\n"
	out, unattached := EnsureMapLines([]byte(conf), drives)
	want := conf + "#qmdump#map:efidisk0:drive-efidisk0:local-lvm:raw:\n"
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	if !reflect.DeepEqual(unattached, []string{"efidisk0"}) {
		t.Errorf("unattached = %v, want [efidisk0] (a key inside a snapshot section does not count)", unattached)
	}
	mapped := "scsi0: x\n#qmdump#map:scsi0:drive-scsi0:local::"
	if out, _ := EnsureMapLines([]byte(mapped), drives[:1]); string(out) != mapped {
		t.Errorf("a config that maps every drive changed: %q", out)
	}
	out, _ = EnsureMapLines([]byte("memory: 1"), drives[:1])
	if string(out) != "memory: 1\n#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:\n" {
		t.Errorf("no trailing newline: got %q", out)
	}
}

func TestSizeString(t *testing.T) {
	for n, want := range map[int64]string{1 << 30: "1G", 3 << 40: "3T", 540672: "528K", 1536: "1536", 512: "512", 10 << 20: "10M"} {
		if got := SizeString(n); got != want {
			t.Errorf("SizeString(%d) = %s, want %s", n, got, want)
		}
	}
}
