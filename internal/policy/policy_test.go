package policy

import (
	"os"
	"strings"
	"testing"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
)

// The committed policy is what the status type's tags say today.
func TestPublishedKeysPolicyIsFresh(t *testing.T) {
	status := octopodsv1alpha1.APIKeyStatus{}
	want := PublishedKeys(octopodsv1alpha1.StatusFieldsOwnedBy(status, octopodsv1alpha1.StatusOwnerOperator),
		octopodsv1alpha1.StatusFieldsOwnedBy(status, octopodsv1alpha1.StatusOwnerUsage)) + KeyDigestSlices()
	got, err := os.ReadFile("../../config/rbac/published_keys_policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatal("config/rbac/published_keys_policy.yaml is stale: run make manifests")
	}
	for _, f := range []string{"publishedKeys", "revokedKeys", "conditions", "keyID"} {
		if !strings.Contains(want, "object.status."+f+" == oldObject.status."+f) {
			t.Errorf("the policy does not guard status.%s", f)
		}
	}
	if strings.Contains(want, "object.status.lastUsedTime == oldObject") {
		t.Error("the policy guards lastUsedTime, which the proxies write")
	}
}

// Every policy that lets the manager through names it by its
// ServiceAccount, never by a verb that a wildcard rule would grant.
func TestPoliciesNameTheManager(t *testing.T) {
	for _, f := range []string{"published_keys_policy.yaml", "key_rotator_policy.yaml"} {
		data, err := os.ReadFile("../../config/rbac/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), "'"+ManagerUsername()+"'") {
			t.Errorf("%s does not name %s", f, ManagerUsername())
		}
		if strings.Contains(string(data), "check('publish')") {
			t.Errorf("%s still asks for the verb publish, which verbs [\"*\"] grants", f)
		}
	}
}
