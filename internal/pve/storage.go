package pve

import (
	"context"
	"net/http"
	"net/url"
)

// Volume is one entry of a storage's content list.
type Volume struct {
	VolID   string `json:"volid"`   // e.g. "local:backup/vzdump-qemu-100-....vma.zst"
	Content string `json:"content"` // "backup", "images", "iso", ...
	Format  string `json:"format"`  // e.g. "vma.zst"
	Size    Int    `json:"size"`    // bytes
	CTime   Int    `json:"ctime"`   // Unix time
	VMID    Int    `json:"vmid"`
	Notes   string `json:"notes"`
}

// StorageContent lists the volumes of storage on node. content, if not
// empty, filters by type ("backup" for archives).
func (c *Client) StorageContent(ctx context.Context, node, storage, content string) ([]Volume, error) {
	var q url.Values
	if content != "" {
		q = url.Values{"content": {content}}
	}
	var vols []Volume
	if _, err := c.do(ctx, http.MethodGet, apiPath("nodes", node, "storage", storage, "content"), q, &vols); err != nil {
		return nil, err
	}
	return vols, nil
}

// DeleteVolume deletes the volume volid from storage on node. Recent
// Proxmox versions delete in a task and return it; older ones return the
// zero UPID.
func (c *Client) DeleteVolume(ctx context.Context, node, storage, volid string) (UPID, error) {
	return c.task(ctx, http.MethodDelete, apiPath("nodes", node, "storage", storage, "content", volid), nil)
}
