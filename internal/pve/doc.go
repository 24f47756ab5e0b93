// Package pve is vmatool's adapter over github.com/luthermonson/go-proxmox,
// limited to what deploying VMs needs: versions, nodes, the cluster view,
// VM status, config, restore, create, start, template and delete, storages,
// uploads and volumes, tasks, the guest agent and HA resources.
//
// go-proxmox makes the calls; this package adds what it lacks:
//   - typed errors: errors.Is(err, ErrVMExists), ErrVMNotFound, ... over
//     Proxmox's own messages, and *TaskError with the end of the task log;
//   - TLS pinned by the SHA-256 fingerprint of the node's certificate, and
//     a refusal that shows the fingerprint the server presented;
//   - a token that is never printed: go-proxmox shows it under %+v, so its
//     client never leaves this package, and Token and Client hide the
//     secret from every fmt verb and from JSON;
//   - per-request timeouts, task waits that survive a lost poll, and
//     uploads that stop when their context is cancelled.
//
// Like the rest of vmatool's libraries it never prints, exits or reads
// environment variables (LoadToken takes PVE_TOKEN's value from its
// caller), and it uses no proxy unless the caller's http.Client does.
package pve
