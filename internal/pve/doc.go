// Package pve is a small typed client for the Proxmox VE HTTP API, limited
// to what deploying a VM from a backup archive needs: nodes, VM status,
// restore, start, template, storage content and tasks.
//
// It authenticates with an API token only (no ticket login, so no password
// is ever held), verifies TLS like a browser unless the caller pins the
// node's self-signed certificate by its SHA-256 fingerprint, and returns
// Proxmox's own error text in an *APIError.
//
// Like the rest of vmatool's libraries it never prints, exits or reads
// environment variables; in particular it uses no proxy unless the caller
// passes an http.Client that does.
package pve
