package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeploySharedArchive deploys one image to four VMs on a node with
// --parallel 4: they share one archive, packed once, so the run stays
// within the memory bound that one deploy keeps; every VM gets the image
// byte for byte and its own name.
func TestDeploySharedArchive(t *testing.T) {
	n := newNode(t)
	// Half random, half text: the archive is large, as a real one is, so
	// the pack pipeline and the shared stream's ring both fill up.
	content := make([]byte, 96<<20)
	rng := rand.NewChaCha8([32]byte{7})
	for off := 0; off < len(content); off += 1 << 20 {
		chunk := content[off : off+1<<20]
		if off/(1<<20)%2 == 0 {
			rng.Read(chunk)
		} else {
			for i := 0; i < len(chunk); i += 32 {
				copy(chunk[i:], fmt.Sprintf("/nix/store/%019d\n", rng.Uint64()%1e15))
			}
		}
	}
	img := writeFile(t, filepath.Join(t.TempDir(), "nixos.raw"), content)
	targets := writeFile(t, filepath.Join(t.TempDir(), "targets.json"), []byte(fmt.Sprintf(`[
  {"name": "web1", "host": %[1]q, "vmid": 701, "vm-name": "web1"},
  {"name": "web2", "host": %[1]q, "vmid": 702, "vm-name": "web2", "via": "ssh-stream"},
  {"name": "web3", "host": %[1]q, "vmid": 703, "vm-name": "web3", "storage": "local-zfs"},
  {"name": "web4", "host": %[1]q, "vmid": 704, "vm-name": "web4", "via": "ssh-stream"}
]`, n.Host())))
	common := []string{"--targets", targets, "--parallel", "4", "--known-hosts", n.SSH.KnownHostsFile,
		"--identity", n.SSH.ClientKeyFile, "--dump-dir", n.Dump, img}

	plan := runInProcess(t, nil, deployEnvVars, append([]string{"deploy", "--dry-run"}, common...)...).mustSucceed(t)
	if strings.Count(plan.stdout, "once for the 4 targets that share it (web1, web2, web3, web4)") != 4 {
		t.Errorf("plan:\n%s", plan.stdout)
	}

	r := vmatool(t, nil, append(deployEnvVars, "TMPDIR="+t.TempDir()), append([]string{"deploy", "-q"}, common...)...).mustSucceed(t)
	r.assertRSS(t)
	t.Logf("peak RSS %.1f MiB", float64(r.maxRSS)/(1<<20))
	if strings.Count(r.stdout, " ok ") != 4 {
		t.Errorf("results:\n%s", r.stdout)
	}
	for vmid := 701; vmid <= 704; vmid++ {
		disk, conf := restoredDisk(t, n.Received(vmid))
		if !bytes.Equal(disk, content) || !strings.Contains(conf, "name: web1\n") {
			t.Errorf("VM %d: the disk differs from the image, or the archive is not the shared one:\n%s", vmid, conf)
		}
	}
	if got := n.calls("qm"); !strings.Contains(got, "set 702 --name web2") || !strings.Contains(got, "set 703 --name web3") ||
		!strings.Contains(got, "set 704 --name web4") || strings.Contains(got, "set 701 --name") {
		t.Errorf("qm calls %q", got)
	}
}
