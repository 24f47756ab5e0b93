package deploy

import (
	"strings"
	"testing"
)

// TestForcedLoss: what the error says is left of a VM that Force was
// replacing depends on how far the run got and on the path; deploy never
// removes it, so the words are all the user learns.
func TestForcedLoss(t *testing.T) {
	for _, c := range []struct {
		via      Via
		restored bool
		want     string
	}{
		{ViaSSHStream, false, "freed the disks the archive restores"},
		{ViaAPI, false, "if it failed before reading the archive's disk map the VM is as it was"},
		{ViaImport, false, "its previous disks and config are lost"},
		{ViaSSH, true, "replaced with force and restored, and stays as the failed step left it"},
		{ViaImport, true, "replaced with force and restored"},
	} {
		j := &job{t: &Target{VMID: 140}, via: c.via, restored: c.restored}
		if got := j.forcedLoss(); !strings.Contains(got, c.want) || !strings.Contains(got, "VM 140") {
			t.Errorf("via %s, restored %v: %q, want it to say %q", c.via, c.restored, got, c.want)
		}
	}
}
