package deploy

import (
	"context"
	"sort"
)

// restorePath is one way of turning the payload into a VM on the node.
// Run calls prepare, transfer, restore and finish in turn, stopping at the
// first error, then cleanup in every case once prepare has succeeded; it
// handles the VM ID check before prepare and the removal of a VM the run
// created after a failure. Each path lives in a file of its own
// (path_*.go) and registers itself there, so adding a path touches one
// file.
type restorePath interface {
	// prepare checks that the node can take this path, before anything
	// is sent: tools, versions, storages, free file names.
	prepare(ctx context.Context) error
	// transfer sends the data to the node.
	transfer(ctx context.Context) error
	// restore makes the VM from it. It calls job.created once Proxmox
	// is past the checks it makes before it writes a config.
	restore(ctx context.Context) error
	// finish makes the VM a template or starts it, and confirms it.
	finish(ctx context.Context) error
	// cleanup deletes what transfer left on the node (unless asked to
	// keep it) and any local temporary files.
	cleanup(ctx context.Context) error
}

// pathInfo describes a registered path.
type pathInfo struct {
	needs needs
	// keepsArchive says KeepArchive makes sense: an archive stays on the
	// node until cleanup.
	keepsArchive bool
	// createsWhole says the path's create call takes every setting, so
	// nothing is left for StepConfigure (postrestore.go).
	createsWhole bool
	// open makes the path for a job.
	open func(j *job) restorePath
	// plan fills in the steps (and, if the path changes it, the config)
	// of a target's plan.
	plan func(tp *TargetPlan, p *payload)
}

// needs are the connections a path uses.
type needs struct{ ssh, api bool }

var paths = map[Via]pathInfo{}

func register(v Via, p pathInfo) { paths[v] = p }

func viaNames() []string {
	names := []string{string(ViaAuto)}
	for v := range paths {
		names = append(names, string(v))
	}
	sort.Strings(names[1:])
	return names
}
