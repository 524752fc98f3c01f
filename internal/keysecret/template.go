package keysecret

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
)

// templateKeys is what octopods.io/secret-template records: the label and
// annotation keys last copied from spec.secretTemplate.
type templateKeys struct {
	Labels      []string `json:"labels,omitempty"`
	Annotations []string `json:"annotations,omitempty"`
}

// ApplyTemplate makes the Secret's metadata follow spec.secretTemplate, as
// cert-manager's secretTemplate does: template keys are set, keys the
// template no longer has are removed, and metadata from anyone else is left
// alone. The operator's own labels and annotations always win.
// workspace is the workspace the key belongs to (its label's value).
func ApplyTemplate(secret *corev1.Secret, tmpl *octopodsv1alpha1.SecretTemplate, workspace string) {
	if secret.Labels == nil {
		secret.Labels = map[string]string{}
	}
	if secret.Annotations == nil {
		secret.Annotations = map[string]string{}
	}
	var previous templateKeys
	// Unreadable (edited by hand): remove nothing rather than guess.
	_ = json.Unmarshal([]byte(secret.Annotations[octopodsv1alpha1.SecretTemplateAnnotation]), &previous)

	template := octopodsv1alpha1.SecretTemplate{}
	if tmpl != nil {
		template = *tmpl
	}
	applied := templateKeys{
		Labels:      follow(secret.Labels, template.Labels, previous.Labels, isOwnLabel),
		Annotations: follow(secret.Annotations, template.Annotations, previous.Annotations, isOwnAnnotation),
	}
	delete(secret.Annotations, octopodsv1alpha1.SecretTemplateAnnotation)
	if len(applied.Labels)+len(applied.Annotations) > 0 {
		record, _ := json.Marshal(applied) // two string slices: cannot fail
		secret.Annotations[octopodsv1alpha1.SecretTemplateAnnotation] = string(record)
	}
	secret.Labels[octopodsv1alpha1.WorkspaceLabel] = workspace
	secret.Labels[octopodsv1alpha1.ManagedByLabel] = octopodsv1alpha1.ManagedByValue
}

// follow removes from meta the keys applied before and no longer in the
// template, copies the template, and returns the keys it copied, sorted.
// Keys the operator owns are neither copied nor removed.
func follow(meta, template map[string]string, before []string, own func(string) bool) []string {
	for _, k := range before {
		if _, kept := template[k]; !kept && !own(k) {
			delete(meta, k)
		}
	}
	var applied []string
	for _, k := range slices.Sorted(maps.Keys(template)) {
		if !own(k) {
			meta[k] = template[k]
			applied = append(applied, k)
		}
	}
	return applied
}

func isOwnLabel(k string) bool {
	return k == octopodsv1alpha1.WorkspaceLabel || k == octopodsv1alpha1.ManagedByLabel
}

// isOwnAnnotation: every octopods.io/ annotation on a key Secret is the
// operator's, including any added later, so none can come from a template.
func isOwnAnnotation(k string) bool {
	return strings.HasPrefix(k, octopodsv1alpha1.GroupVersion.Group+"/")
}

// TemplateChanges reports whether applying the template would change the
// Secret's metadata.
func TemplateChanges(secret *corev1.Secret, tmpl *octopodsv1alpha1.SecretTemplate, workspace string) bool {
	applied := secret.DeepCopy()
	ApplyTemplate(applied, tmpl, workspace)
	return !equality.Semantic.DeepEqual(applied.ObjectMeta, secret.ObjectMeta)
}
