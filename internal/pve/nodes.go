package pve

import (
	"context"
	"net/http"
	"net/url"
)

// Version is the answer of GET /version.
type Version struct {
	Version string `json:"version"` // e.g. "8.2.4"
	Release string `json:"release"` // e.g. "8.2"
	RepoID  string `json:"repoid"`
}

// Version returns the API server's version. It is the cheapest call that
// checks connectivity, TLS trust and the token at once.
func (c *Client) Version(ctx context.Context) (*Version, error) {
	var v Version
	if _, err := c.do(ctx, http.MethodGet, "/version", nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// Node is one cluster member, as GET /nodes lists it.
type Node struct {
	Node   string `json:"node"`
	Status string `json:"status"` // "online", "offline" or "unknown"
}

// Nodes lists the cluster's nodes.
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	var nodes []Node
	if _, err := c.do(ctx, http.MethodGet, "/nodes", nil, &nodes); err != nil {
		return nil, err
	}
	return nodes, nil
}

// ClusterVM is a QEMU guest anywhere in the cluster, from
// GET /cluster/resources.
type ClusterVM struct {
	VMID     int    `json:"vmid"`
	Node     string `json:"node"`
	Name     string `json:"name"`
	Status   string `json:"status"`
	Template Bool   `json:"template"`
}

// ClusterVMs lists the QEMU guests of every node. A VM ID is unique
// cluster-wide, so this is the check to make before restoring: a node's
// own VMStatus does not see guests on other nodes.
func (c *Client) ClusterVMs(ctx context.Context) ([]ClusterVM, error) {
	var all []struct {
		ClusterVM
		Type string `json:"type"`
	}
	q := url.Values{"type": {"vm"}}
	if _, err := c.do(ctx, http.MethodGet, "/cluster/resources", q, &all); err != nil {
		return nil, err
	}
	var vms []ClusterVM
	for _, r := range all {
		if r.Type == "qemu" {
			vms = append(vms, r.ClusterVM)
		}
	}
	return vms, nil
}
