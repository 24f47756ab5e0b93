package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/vmatool/vmatool/internal/pve"
)

// ViaImport needs no SSH at all. The API cannot take a VMA upload, so each
// disk goes up on its own as a qcow2 image to a storage with import
// content, and the create call imports it: "KEY: STORAGE:0,import-from=
// IMPORTSTORAGE:import/FILE" (qemu-server src/PVE/API2/Qemu.pm), with the
// rest of the config's keys. The uploaded files are deleted afterwards.
// The node needs Proxmox VE 8.4 or later (disk images as import content
// came with libpve-storage-perl 8.3.6) and ImportStorage listing import
// among its content types; the token needs Datastore.AllocateTemplate on
// it besides what a create needs.
const ViaImport Via = "import"

var (
	// ErrNodeTooOld means the node's Proxmox VE predates disk image
	// uploads (8.4).
	ErrNodeTooOld = errors.New("the node's Proxmox VE cannot import disk images through the API")
	// ErrNoImportContent means the import storage does not take import
	// content.
	ErrNoImportContent = errors.New("the storage takes no import content")
)

func init() {
	register(ViaImport, pathInfo{
		needs:        needs{api: true},
		createsWhole: true,
		open:         func(j *job) restorePath { return &importPath{j: j} },
		plan: func(tp *TargetPlan, p *payload) {
			t := &tp.Target
			names := importNames(t, p)
			params := createParams(p.config, importVolumes(t, names), t.Storage, t.Unique, func(string) {})
			mergePostRestore(params, p.postRestore)
			tp.Config = paramLines(params)
			tp.Steps = append(tp.Steps, checkStep(t, "the API"),
				fmt.Sprintf("check that the node runs Proxmox VE 8.4 or later, that storage %s takes import content and %s VM images", t.ImportStorage, t.Storage))
			for _, d := range p.devices {
				name, ok := names[d.key]
				if !ok || params[d.key] == "" {
					continue
				}
				switch {
				case p.pack == nil:
					tp.Steps = append(tp.Steps, fmt.Sprintf("extract %s from the archive into a compressed qcow2 file", d.devName))
				case !uploadableAsIs(d.dev):
					tp.Steps = append(tp.Steps, fmt.Sprintf("convert %s into a compressed qcow2 file", d.dev.Path))
				}
				tp.Steps = append(tp.Steps, fmt.Sprintf("upload it as %s:import/%s", t.ImportStorage, name))
			}
			what := "create"
			if t.Force {
				what = "remove the VM force replaces, if any, then create"
			}
			tp.Steps = append(tp.Steps, fmt.Sprintf("%s VM %d through the API at %s, importing each disk onto %s", what, t.VMID, t.apiURL(), t.Storage))
			tp.Steps = append(tp.Steps, finishSteps(t, "the API")...)
			tp.Steps = append(tp.Steps, "delete the uploaded images")
		},
	})
}

// importNames names the upload of each disk that has a drive key. The
// names fit what the upload takes (pve-storage src/PVE/Storage.pm
// SAFE_CHAR_CLASS_RE and UPLOAD_IMPORT_EXT_RE_1).
func importNames(t *Target, p *payload) map[string]string {
	names := map[string]string{}
	for _, d := range p.devices {
		if d.key != "" {
			names[d.key] = fmt.Sprintf("vmatool-%d-%s-%s.qcow2", t.VMID, d.key, p.now.Format("20060102-150405"))
		}
	}
	return names
}

func importVolumes(t *Target, names map[string]string) map[string]string {
	vols := map[string]string{}
	for k, n := range names {
		vols[k] = t.ImportStorage + ":import/" + n
	}
	return vols
}

type importPath struct {
	j      *job
	params map[string]string
	files  []*importFile
	volids []string // uploaded
}

// prepare refuses, before anything is uploaded, a node too old for disk
// image imports, storages without the content types the path needs, and
// upload names already taken (an upload would overwrite the file:
// pve-storage src/PVE/API2/Storage/Status.pm).
func (s *importPath) prepare(ctx context.Context) error {
	j := s.j
	t := j.t
	v, err := j.api.NodeVersion(ctx, j.node)
	if err != nil {
		return err
	}
	if !v.AtLeast(8, 4) {
		return fmt.Errorf("%w: node %s runs %s; disk images can be uploaded for import from 8.4 on (use --via ssh, ssh-stream or api)", ErrNodeTooOld, j.node, v.Version)
	}
	ss, err := j.api.Storages(ctx, j.node)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(ss, func(st pve.Storage) bool { return st.Name == t.ImportStorage })
	switch {
	case i < 0:
		return fmt.Errorf("node %s has no storage %q to upload the disk images to (import-storage)", j.node, t.ImportStorage)
	case !ss[i].Holds("import"):
		return fmt.Errorf("%w: storage %s on node %s takes %s; add import with: pvesm set %s --content %s,import",
			ErrNoImportContent, t.ImportStorage, j.node, strings.Join(ss[i].Content, ","), t.ImportStorage, strings.Join(ss[i].Content, ","))
	}
	if err := needContent(ss, j.node, t.Storage, "images"); err != nil {
		return err
	}

	names := importNames(t, j.pl)
	s.params = createParams(j.pl.config, importVolumes(t, names), t.Storage, t.Unique, j.warn)
	// The create makes the disks the archive would lack, and MAC
	// addresses, itself: PostRestore goes into its parameters.
	mergePostRestore(s.params, j.pl.postRestore)
	have, err := j.api.StorageContent(ctx, j.node, t.ImportStorage, "import")
	if err != nil {
		return err
	}
	for _, d := range j.pl.devices {
		name, ok := names[d.key]
		if !ok || !strings.Contains(s.params[d.key], "import-from=") {
			j.warn(fmt.Sprintf("%s has no drive line in the config; it is not imported", d.devName))
			continue
		}
		volid := t.ImportStorage + ":import/" + name
		if slices.ContainsFunc(have, func(v pve.Volume) bool { return v.VolID == volid }) {
			return fmt.Errorf("%s exists already, and an upload would overwrite it", volid)
		}
		s.files = append(s.files, &importFile{key: d.key, name: name})
	}
	if fw, ok := j.src.archiveConfig("qemu-server.fw"); ok && len(fw) > 0 {
		j.warn("the archive's firewall rules (qemu-server.fw) are not carried over by --via import")
	}
	return nil
}

// transfer makes each disk's qcow2 file (the image as it is, converted,
// or extracted from the archive in one pass) and uploads it with its
// SHA-256, which the upload task checks.
func (s *importPath) transfer(ctx context.Context) error {
	j := s.j
	if err := s.makeFiles(ctx); err != nil {
		return err
	}
	var base int64
	for _, f := range s.files {
		volid := j.t.ImportStorage + ":import/" + f.name
		err := j.do(StepTransfer, fmt.Sprintf("upload %s as %s", f.path, volid), func() error {
			var err error
			if f.size, f.sha256, err = hashFile(f.path); err != nil {
				return err
			}
			body, err := os.Open(f.path)
			if err != nil {
				return err
			}
			defer body.Close()
			sentBefore := base
			upid, err := j.api.Upload(ctx, j.node, j.t.ImportStorage, pve.Upload{
				Content: "import", Filename: f.name, Body: body, Size: f.size,
				Checksum: f.sha256, ChecksumAlgorithm: "sha256",
				Progress: func(n int64) { j.setSent(sentBefore + n) },
			})
			j.progress(true)
			if err != nil {
				return err
			}
			// From here the task may leave the file: cleanup deletes it,
			// and a missing one only warns (pve-storage
			// src/PVE/API2/Storage/Content.pm).
			s.volids = append(s.volids, volid)
			return s.j.waitTask(ctx, upid)
		})
		if err != nil {
			return err
		}
		base += f.size
		if f.temp {
			os.Remove(f.path)
		}
	}
	return nil
}

func (s *importPath) makeFiles(ctx context.Context) error {
	j := s.j
	if j.pl.pack == nil {
		want := map[string]bool{}
		byKey := map[string]string{}
		for _, d := range j.pl.devices {
			byKey[d.key] = d.devName
		}
		for _, f := range s.files {
			want[byKey[f.key]] = true
		}
		return j.do(StepTransfer, fmt.Sprintf("extract %d disk(s) of %s into compressed qcow2 files", len(want), j.src.Path), func() error {
			paths, err := extractArchive(ctx, j.src, j.opts.TempDir, want, j)
			if err != nil {
				return err
			}
			for _, f := range s.files {
				f.path, f.temp = paths[byKey[f.key]], true
			}
			return nil
		})
	}
	for _, f := range s.files {
		i := slices.IndexFunc(j.pl.devices, func(d payloadDevice) bool { return d.key == f.key })
		d := j.pl.devices[i].dev
		if uploadableAsIs(d) {
			f.path = d.Path
			j.Update(d.Disk.Size())
			continue
		}
		err := j.do(StepTransfer, fmt.Sprintf("convert %s into a compressed qcow2 file", d.Path), func() error {
			p, err := convertImage(ctx, j.opts.TempDir, d.Disk, j)
			f.path, f.temp = p, err == nil
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// restore creates the VM, importing the uploaded disks. With force, an
// existing VM on this node is removed first, as qmrestore's force does.
func (s *importPath) restore(ctx context.Context) error {
	j := s.j
	vmid := j.t.VMID
	if j.existed {
		err := j.do(StepRestore, fmt.Sprintf("remove VM %d, which force replaces", vmid), func() error {
			upid, err := j.api.DeleteVM(ctx, j.node, vmid)
			if err != nil {
				return err // refused up front (running, protected): unchanged
			}
			j.created()
			return s.j.waitTask(ctx, upid)
		})
		if err != nil {
			return err
		}
	}
	return j.do(StepRestore, fmt.Sprintf("create VM %d importing %d disk(s) onto %s", vmid, len(s.files), j.t.Storage), func() error {
		upid, err := j.api.CreateVM(ctx, j.node, vmid, s.params)
		if errors.Is(err, pve.ErrVMExists) {
			return j.refusedAsExisting(err)
		}
		if err != nil {
			return err
		}
		// A failed create removes its config and disks; undo then finds
		// nothing to remove.
		j.created()
		return s.j.waitRestoreTask(ctx, upid)
	})
}

func (s *importPath) finish(ctx context.Context) error { return s.j.finishVM(ctx) }

// cleanup deletes the uploaded images and the temporary files.
func (s *importPath) cleanup(ctx context.Context) error {
	j := s.j
	for _, f := range s.files {
		if f.temp {
			os.Remove(f.path)
		}
	}
	var errs []error
	for _, volid := range s.volids {
		err := j.do(StepCleanup, "delete "+volid, func() error {
			upid, err := j.api.DeleteVolume(ctx, j.node, j.t.ImportStorage, volid)
			if err != nil {
				return err
			}
			return s.j.waitTask(ctx, upid)
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("deleting %s: %w", volid, err))
		}
	}
	return errors.Join(errs...)
}
