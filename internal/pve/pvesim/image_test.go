package pvesim_test

import (
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmatool/vmatool/internal/pve/pvesim"
)

// TestUploadRefusesBackingFile: the upload task checks the image as
// untrusted with qemu-img info, which refuses a backing file
// (pve-storage src/PVE/Storage/Plugin.pm file_size_info), and a raw file
// named .qcow2.
func TestUploadRefusesBackingFile(t *testing.T) {
	qemuImg, err := exec.LookPath("qemu-img")
	if err != nil {
		if os.Getenv("VMATOOL_REQUIRE_TOOLS") == "1" {
			t.Fatal("qemu-img not found and VMATOOL_REQUIRE_TOOLS=1")
		}
		t.Skip("qemu-img not found")
	}
	dir := t.TempDir()
	top := filepath.Join(dir, "top.qcow2")
	if out, err := exec.Command(qemuImg, "create", "-q", "-u", "-f", "qcow2", "-b", "base.raw", "-F", "raw", top, "1M").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	withBacking, _ := os.ReadFile(top)
	node := pvesim.DefaultNode("pve")
	node.Storages[0].Content = append(node.Storages[0].Content, "import")
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"backing file", withBacking, "backing file not allowed for untrusted image '/var/tmp/pveupload-"},
		{"raw named qcow2", qcow2Raw, "failed to query file information with qemu-img"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := pvesim.New(t, pvesim.WithNodes(node))
			body, ct := multipartBody(t, [][2]string{{"content", "import"}}, "filename", "nixos.qcow2", tc.data)
			a := do(t, sim, "POST", "/nodes/pve/storage/local/upload", auth(sim), body, ct)
			var upid string
			json.Unmarshal(a.data, &upid)
			if exit := wait(t, sim, "pve", upid); !strings.HasPrefix(exit, tc.want) {
				t.Errorf("exit %q, want %q", exit, tc.want)
			}
			if v := sim.Volumes("local"); len(v) != 0 {
				t.Errorf("the refused upload was kept: %v", v)
			}
		})
	}
}

// TestImportEFIDiskNeedsType: an imported EFI disk must name its type
// and keys, a TPM state its version (qemu-server src/PVE/API2/Qemu.pm
// check_drive_param).
func TestImportEFIDiskNeedsType(t *testing.T) {
	sim := pvesim.New(t)
	sim.AddVolume("local", pvesim.Volume{VolID: "local:import/efi.qcow2", Content: "import", Format: "qcow2", Data: qcow2Image})
	for _, tc := range []struct{ key, value, want string }{
		{"efidisk0", "local-lvm:0,import-from=local:import/efi.qcow2", "need to specify 'efitype' when using 'import-from'"},
		{"efidisk0", "local-lvm:0,import-from=local:import/efi.qcow2,efitype=4m", "need to specify 'pre-enrolled-keys' when using 'import-from'"},
		{"tpmstate0", "local-lvm:0,import-from=local:import/efi.qcow2", "need to specify 'version' when using 'import-from'"},
	} {
		a, _ := post(t, sim, "/nodes/pve/qemu", url.Values{"vmid": {"120"}, tc.key: {tc.value}})
		if a.status != 400 || a.errors[tc.key] != tc.want {
			t.Errorf("%s=%s: %d %v", tc.key, tc.value, a.status, a.errors)
		}
	}
	a, upid := post(t, sim, "/nodes/pve/qemu", url.Values{"vmid": {"120"}, "efidisk0": {"local-lvm:0,import-from=local:import/efi.qcow2,efitype=4m,pre-enrolled-keys=0"}})
	if exit := wait(t, sim, "pve", upid); a.status != 200 || exit != "OK" {
		t.Errorf("complete efidisk0: %d %q", a.status, exit)
	}
}
