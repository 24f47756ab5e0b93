package deploy

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"

	"github.com/vmatool/vmatool/internal/pve"
)

// ViaAPI uploads the archive over SSH into the dump folder of a storage
// with backup content, then restores it through the API: the API cannot
// take a VMA upload (pve-storage src/PVE/API2/Storage/Status.pm takes iso,
// vztmpl and import content only). The node needs SSH for the upload, an
// API token that may allocate the VM, and DumpDir to be DumpStorage's
// backup folder.
const ViaAPI Via = "api"

func init() {
	register(ViaAPI, pathInfo{
		needs:        needs{ssh: true, api: true},
		keepsArchive: true,
		open:         func(j *job) restorePath { return &apiPath{j: j} },
		plan: func(tp *TargetPlan, p *payload) {
			t := &tp.Target
			name := p.archiveName(p.sendCompression())
			tp.Archive = name
			tp.Steps = append(tp.Steps, checkStep(t, "the API"),
				fmt.Sprintf("check that storage %s takes backups and %s takes VM images", t.DumpStorage, t.Storage),
				fmt.Sprintf("%s and upload it over SSH to %s (as .part, renamed when complete)", sendWhat(p), path.Join(t.DumpDir, name)),
				fmt.Sprintf("restore %s:backup/%s through the API at %s onto %s", t.DumpStorage, name, t.apiURL(), t.Storage))
			tp.Steps = append(tp.Steps, configureStep(t, p, "the API")...)
			tp.Steps = append(tp.Steps, finishSteps(t, "the API")...)
			if !t.KeepArchive {
				tp.Steps = append(tp.Steps, "delete the archive through the API")
			}
		},
	})
}

type apiPath struct {
	j        *job
	name     string
	uploaded bool
	restored bool
}

func (a *apiPath) volid() string { return a.j.t.DumpStorage + ":backup/" + a.name }

// prepare checks the storages up front; Proxmox would refuse a storage
// without images content only inside the restore task, after the upload.
func (a *apiPath) prepare(ctx context.Context) error {
	j := a.j
	a.name = j.pl.archiveName(j.pl.sendCompression())
	ss, err := j.api.Storages(ctx, j.node)
	if err != nil {
		return err
	}
	if err := needContent(ss, j.node, j.t.DumpStorage, "backup"); err != nil {
		return err
	}
	return needContent(ss, j.node, j.t.Storage, "images")
}

// needContent checks that storage exists on node and takes content.
func needContent(ss []pve.Storage, node, storage, content string) error {
	i := slices.IndexFunc(ss, func(s pve.Storage) bool { return s.Name == storage })
	switch {
	case i < 0:
		return fmt.Errorf("node %s has no storage %q", node, storage)
	case !ss[i].Holds(content):
		return fmt.Errorf("storage %s on node %s does not take %s content (it takes %v)", storage, node, content, ss[i].Content)
	}
	return nil
}

func (a *apiPath) transfer(ctx context.Context) error {
	j := a.j
	return j.do(StepTransfer, "upload "+path.Join(j.t.DumpDir, a.name), func() error {
		err := j.uploadArchive(ctx, j.t.DumpDir, a.name, j.pl.sendCompression())
		a.uploaded = err == nil
		return err
	})
}

func (a *apiPath) restore(ctx context.Context) error {
	j := a.j
	return j.do(StepRestore, fmt.Sprintf("restore %s as VM %d through the API", a.volid(), j.t.VMID), func() error {
		upid, err := j.api.RestoreVM(ctx, j.node, pve.RestoreOptions{
			VMID: j.t.VMID, Archive: a.volid(), Storage: j.t.Storage, Force: j.t.Force, Unique: j.t.Unique,
		})
		if errors.Is(err, pve.ErrVMExists) {
			return j.refusedAsExisting(err)
		}
		if err != nil {
			return err // refused up front: nothing was created
		}
		j.created()
		if err := j.waitRestoreTask(ctx, upid); err != nil {
			return fmt.Errorf("%w (the archive stays at %s for inspection)", err, a.volid())
		}
		a.restored = true
		return nil
	})
}

func (a *apiPath) finish(ctx context.Context) error { return a.j.finishVM(ctx) }

func (a *apiPath) cleanup(ctx context.Context) error {
	j := a.j
	switch {
	case !a.uploaded:
		return nil
	case j.t.KeepArchive, j.touched && !a.restored:
		j.archive = path.Join(j.t.DumpDir, a.name)
		return nil
	}
	return j.do(StepCleanup, "delete "+a.volid(), func() error {
		upid, err := j.api.DeleteVolume(ctx, j.node, j.t.DumpStorage, a.volid())
		if err != nil {
			return err
		}
		return j.waitTask(ctx, upid)
	})
}
