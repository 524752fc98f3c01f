// Package controllers holds the operator's reconcilers, one per concern,
// coordinating through status:
//
//   - WorkspaceAPIKeyReconciler issues, rotates, re-issues and revokes a
//     workspace's key in its Secret, and publishes the digests of the keys
//     the Secret holds (status.publishedKeys) for the auth proxy. Its status
//     is computed in one place (workspaceapikey_status.go) from what a
//     reconcile observed.
//   - WorkspaceReconciler keeps a Workspace's settings-table summary and
//     revokes its key when the Workspace goes.
//
// Shared names (the finalizer, the name mapping, confirmed reads) live in
// shared.go; conditions, reasons and events in conditions.go.
package controllers
