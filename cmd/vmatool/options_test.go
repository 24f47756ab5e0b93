package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"github.com/vmatool/vmatool/internal/recipe"
	"github.com/vmatool/vmatool/vma"
)

// These tests call the commands' run functions with options structs, as
// code (convert running pack) does: no command line at all.

func TestRunVerifyOptions(t *testing.T) {
	s, out, _ := fakeStreams(false)
	o := &verifyOptions{cmdLine: cmdLine{args: []string{filepath.Join(vectorDir, "v02-two-disks.vma")}}, asJSON: true}
	if err := runVerify(context.Background(), s, o); err != nil {
		t.Fatal(err)
	}
	var doc verifyJSONDoc
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if !doc.OK || doc.ArchiveDoc == nil || len(doc.Devices) != 2 || doc.UUID != "b2ffdba1-db61-4dc2-af39-1a2646acc612" || doc.Stats == nil || doc.Stats.Extents == 0 {
		t.Errorf("verify --json: %s", out)
	}

	s, out, errb := fakeStreams(false)
	o.args = []string{filepath.Join(vectorDir, "e02-extent-md5.vma")}
	if err := runVerify(context.Background(), s, o); !errors.Is(err, errSilent) {
		t.Errorf("a damaged archive: %v, want errSilent (the document says it)", err)
	}
	doc = verifyJSONDoc{}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil || doc.OK || !strings.Contains(doc.Kind, "checksum") || errb.Len() != 0 {
		t.Errorf("verify --json of a damaged archive: %s (%v), stderr %q", out, err, errb)
	}

	o = &verifyOptions{cmdLine: cmdLine{args: []string{"a", "b"}}}
	var ue usageError
	if err := runVerify(context.Background(), s, o); !errors.As(err, &ue) || !strings.Contains(ue.msg, "got 2 arguments") {
		t.Errorf("two archives: %v, want a usage error", err)
	}
}

func TestRunListAndConfigOptions(t *testing.T) {
	archive := filepath.Join(vectorDir, "v02-two-disks.vma")
	s, out, _ := fakeStreams(false)
	if err := runList(context.Background(), s, &listOptions{cmdLine: cmdLine{args: []string{archive}}}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "CFG: size: 359 name: qemu-server.conf\nCFG: size: 56 name: qemu-server.fw\nDEV: dev_id=1 size: 540672 devname: drive-efidisk0\n") {
		t.Errorf("list: %q", out)
	}

	s, out, _ = fakeStreams(false)
	if err := runConfig(context.Background(), s, &configOptions{cmdLine: cmdLine{args: []string{archive}}, name: "qemu-server.fw"}); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 56 {
		t.Errorf("config qemu-server.fw: %d bytes, want 56", out.Len())
	}
	err := runConfig(context.Background(), s, &configOptions{cmdLine: cmdLine{args: []string{archive}}, name: "nope.conf"})
	if err == nil || !strings.Contains(err.Error(), "unable to find configuration data 'nope.conf'") {
		t.Errorf("a config the archive lacks: %v", err)
	}
}

// TestRunUnpackOptions: devices without their drive- prefix pick the
// disks, and only those are written.
func TestRunUnpackOptions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	s, _, _ := fakeStreams(false)
	o := &unpackOptions{cmdLine: cmdLine{args: []string{filepath.Join(vectorDir, "v02-two-disks.vma"), dir}}, devices: []string{"scsi0"}, quiet: true}
	if err := runUnpack(context.Background(), s, o); err != nil {
		t.Fatal(err)
	}
	if got := dirNames(t, dir); !reflect.DeepEqual(got, []string{"disk-drive-scsi0.raw", "qemu-server.conf", "qemu-server.fw"}) {
		t.Errorf("unpack -d scsi0 wrote %v", got)
	}
	if got, want := fileSHA(t, filepath.Join(dir, "disk-drive-scsi0.raw")), "295f2adc0c764afe5ada5c9069f7126e815781b7bf6c575e60c84106a0032211"; got != want {
		t.Errorf("drive-scsi0: sha256 %s, want %s", got, want)
	}
}

// TestRunPackOptions: defaults gives the flags' defaults, and a flag that
// means something by being given (--ctime) is refused at -1 only when
// given.
func TestRunPackOptions(t *testing.T) {
	o := defaults[packOptions]()
	if o.vmid != recipe.DefaultVMID || o.storage != recipe.DefaultStorage || o.ctime != -1 || o.isGiven("ctime") || len(o.args) != 0 {
		t.Fatalf("defaults: %+v", o)
	}
	dir := t.TempDir()
	img := testImage(t, dir, "in.raw", 256<<10)
	o.output, o.args, o.quiet, o.uuid = filepath.Join(dir, "out.vma"), []string{"efidisk0=" + img}, true, "0a7b5a7e-ce2b-4d5e-9c0a-a0b1c2d3e4f5"
	s, out, _ := fakeStreams(false)
	if err := runPack(context.Background(), s, o); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Errorf("--quiet printed %q", out)
	}
	f, err := os.Open(o.output)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := vma.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	h := r.Header()
	if h.UUID.String() != o.uuid || len(h.Devices) != 1 || h.Devices[0].Name != "drive-efidisk0" || h.Devices[0].Size != 256<<10 {
		t.Errorf("archive: uuid %s, devices %+v", h.UUID, h.Devices)
	}

	o.output = filepath.Join(dir, "again.vma")
	o.give("ctime") // -1, given
	var ue usageError
	if err := runPack(context.Background(), s, o); !errors.As(err, &ue) || ue.msg != "--ctime must not be negative" {
		t.Errorf("--ctime -1 given: %v, want a usage error", err)
	}
	assertGone(t, o.output)
}

// TestOptionsFromTheCommandLine: parsing fills the options struct the
// run function gets: values, arguments, and which flags were given.
func TestOptionsFromTheCommandLine(t *testing.T) {
	var got *extractOptions
	fs := pflag.NewFlagSet("extract", pflag.ContinueOnError)
	run := runs(func(_ context.Context, _ *streams, o *extractOptions) error { got = o; return nil })(fs)
	if err := fs.Parse([]string{"-v", "-d", "", "a.vma", "out"}); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if !got.verbose || got.drives != "" || !got.isGiven("drives") || got.isGiven("read-map") || !reflect.DeepEqual(got.args, []string{"a.vma", "out"}) {
		t.Errorf("parsed into %+v", got)
	}
}

// TestRunExtractNoDrives: -d "" (given, empty) extracts no disk, where
// no -d extracts all, as Proxmox's extract does.
func TestRunExtractNoDrives(t *testing.T) {
	for _, tc := range []struct {
		given bool
		want  []string
	}{
		{false, []string{"disk-drive-efidisk0.raw", "disk-drive-scsi0.raw", "qemu-server.conf", "qemu-server.fw"}},
		{true, []string{"qemu-server.conf", "qemu-server.fw"}},
	} {
		dir := filepath.Join(t.TempDir(), "out")
		s, _, _ := fakeStreams(false)
		o := &extractOptions{cmdLine: cmdLine{args: []string{filepath.Join(vectorDir, "v02-two-disks.vma"), dir}}}
		if tc.given {
			o.give("drives")
		}
		if err := runExtract(context.Background(), s, o); err != nil {
			t.Fatal(err)
		}
		if got := dirNames(t, dir); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("-d given %v: %v, want %v", tc.given, got, tc.want)
		}
	}
}
