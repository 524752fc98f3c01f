// Command policygen writes the admission policy that keeps publishing the
// manager's alone (config/rbac/published_keys_policy.yaml) from the status
// type's `octopods` tags: every field the operator owns is guarded, every
// usage field may only move as the proxies move it. Run by make manifests.
//
//	go run ./hack/policygen config/rbac/published_keys_policy.yaml
package main

import (
	"fmt"
	"os"
	"strings"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/policy"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: policygen OUTPUT.yaml")
		os.Exit(2)
	}
	status := octopodsv1alpha1.APIKeyStatus{}
	out := policy.PublishedKeys(
		octopodsv1alpha1.StatusFieldsOwnedBy(status, octopodsv1alpha1.StatusOwnerOperator),
		octopodsv1alpha1.StatusFieldsOwnedBy(status, octopodsv1alpha1.StatusOwnerUsage)) + policy.KeyDigestSlices()
	if err := os.WriteFile(os.Args[1], []byte(out), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, strings.TrimSpace(err.Error()))
		os.Exit(1)
	}
}
