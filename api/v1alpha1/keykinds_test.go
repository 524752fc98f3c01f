package v1alpha1

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// crdSchema reads the v1alpha1 openAPIV3Schema of a generated CRD.
func crdSchema(t *testing.T, resource string) map[string]any {
	t.Helper()
	data, err := os.ReadFile("../../config/crd/bases/octopods.io_" + resource + ".yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatal(err)
	}
	return crd.Spec.Versions[0].Schema.OpenAPIV3Schema
}

func property(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		m, _ = m["properties"].(map[string]any)[p].(map[string]any)
	}
	return m
}

// TestThreeKeyKindsCarryTheSameRules: the channel and WhatsApp keys' CRDs
// have the workspace key's spec fields and rules (but the owner's name and
// the Secret name's suffix) and the very same status: one schema, not
// three that drift apart.
func TestThreeKeyKindsCarryTheSameRules(t *testing.T) {
	neutral := func(kind KeyKind, v any) string {
		data, err := json.Marshal(v) // no line wrapping, unlike YAML
		if err != nil {
			t.Fatal(err)
		}
		s := string(data)
		for _, r := range []struct{ from, to string }{
			{kind.SecretNameSuffix, "-SUFFIX"}, {kind.OwnerField, "OWNER"}, {kind.Kind, "KIND"},
		} {
			s = strings.ReplaceAll(s, r.from, r.to)
		}
		return s
	}
	want := crdSchema(t, WorkspaceKey.Resource)
	for _, kind := range []KeyKind{ChannelKey, WhatsAppKey} {
		got := crdSchema(t, kind.Resource)
		if !reflect.DeepEqual(property(got, "status"), property(want, "status")) {
			t.Errorf("%s status schema differs from WorkspaceAPIKey's", kind.Kind)
		}
		gotSpec, wantSpec := property(got, "spec"), property(want, "spec")
		for name := range wantSpec["properties"].(map[string]any) {
			if name == WorkspaceKey.OwnerField {
				continue
			}
			if !reflect.DeepEqual(property(gotSpec, name), property(wantSpec, name)) {
				t.Errorf("%s spec.%s differs from WorkspaceAPIKey's", kind.Kind, name)
			}
		}
		if len(gotSpec["properties"].(map[string]any)) != len(wantSpec["properties"].(map[string]any)) {
			t.Errorf("%s has %d spec fields, WorkspaceAPIKey %d", kind.Kind, len(gotSpec["properties"].(map[string]any)), len(wantSpec["properties"].(map[string]any)))
		}
		if a, b := neutral(kind, gotSpec["x-kubernetes-validations"]), neutral(WorkspaceKey, wantSpec["x-kubernetes-validations"]); a != b {
			t.Errorf("%s spec rules differ from WorkspaceAPIKey's:\n%s\nvs\n%s", kind.Kind, a, b)
		}
		if a, b := neutral(kind, property(gotSpec, kind.OwnerField)["x-kubernetes-validations"]), neutral(WorkspaceKey, property(wantSpec, WorkspaceKey.OwnerField)["x-kubernetes-validations"]); !strings.Contains(a, "self == oldSelf") || !strings.Contains(b, "self == oldSelf") {
			t.Errorf("%s: the owner's name is not immutable", kind.Kind)
		}
		if rules := neutral(kind, got["x-kubernetes-validations"]); !strings.Contains(rules, "self.spec.OWNER == self.metadata.name") {
			t.Errorf("%s: the key's name is not held to its owner's: %s", kind.Kind, rules)
		}
	}
}
