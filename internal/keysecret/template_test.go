package keysecret

import (
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
)

func TestApplyTemplate(t *testing.T) {
	const record = octopodsv1alpha1.SecretTemplateAnnotation
	own := map[string]string{octopodsv1alpha1.WorkspaceLabel: "acme", octopodsv1alpha1.ManagedByLabel: octopodsv1alpha1.ManagedByValue}
	with := func(extra map[string]string) map[string]string {
		out := maps.Clone(own)
		maps.Copy(out, extra)
		return out
	}
	for _, tc := range []struct {
		name                        string
		template                    *octopodsv1alpha1.SecretTemplate
		labels, annotations         map[string]string // on the Secret before
		wantLabels, wantAnnotations map[string]string
	}{
		{
			name:            "no template",
			wantLabels:      own,
			wantAnnotations: map[string]string{},
		},
		{
			name:            "first application is recorded",
			template:        &octopodsv1alpha1.SecretTemplate{Labels: map[string]string{"team": "support"}, Annotations: map[string]string{"reloader.stakater.com/match": "true"}},
			wantLabels:      with(map[string]string{"team": "support"}),
			wantAnnotations: map[string]string{"reloader.stakater.com/match": "true", record: `{"labels":["team"],"annotations":["reloader.stakater.com/match"]}`},
		},
		{
			name:     "a key removed from the template is removed from the Secret",
			template: &octopodsv1alpha1.SecretTemplate{Labels: map[string]string{"team": "billing"}},
			labels:   with(map[string]string{"team": "support", "tier": "gold"}),
			annotations: map[string]string{"reloader.stakater.com/match": "true",
				record: `{"labels":["team","tier"],"annotations":["reloader.stakater.com/match"]}`},
			wantLabels:      with(map[string]string{"team": "billing"}),
			wantAnnotations: map[string]string{record: `{"labels":["team"]}`},
		},
		{
			name:            "template removed altogether",
			labels:          with(map[string]string{"team": "support"}),
			annotations:     map[string]string{record: `{"labels":["team"]}`},
			wantLabels:      own,
			wantAnnotations: map[string]string{},
		},
		{
			name:            "metadata from anyone else is left alone",
			template:        &octopodsv1alpha1.SecretTemplate{},
			labels:          with(map[string]string{"backup": "daily"}),
			annotations:     map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}", record: `{"labels":["team"]}`},
			wantLabels:      with(map[string]string{"backup": "daily"}),
			wantAnnotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"},
		},
		{
			name: "the operator's own keys always win and are never recorded",
			template: &octopodsv1alpha1.SecretTemplate{
				Labels:      map[string]string{octopodsv1alpha1.ManagedByLabel: "someone-else", octopodsv1alpha1.WorkspaceLabel: "globex"},
				Annotations: map[string]string{octopodsv1alpha1.KeyIDAnnotation: "forged", record: `{"labels":["x"]}`},
			},
			annotations:     map[string]string{octopodsv1alpha1.KeyIDAnnotation: "979690f7253f"},
			wantLabels:      own,
			wantAnnotations: map[string]string{octopodsv1alpha1.KeyIDAnnotation: "979690f7253f"},
		},
		{
			name:            "a record edited by hand removes nothing",
			template:        &octopodsv1alpha1.SecretTemplate{Labels: map[string]string{"team": "support"}},
			labels:          with(map[string]string{"tier": "gold"}),
			annotations:     map[string]string{record: `not json`},
			wantLabels:      with(map[string]string{"team": "support", "tier": "gold"}),
			wantAnnotations: map[string]string{record: `{"labels":["team"]}`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Labels: maps.Clone(tc.labels), Annotations: maps.Clone(tc.annotations)}}
			ApplyTemplate(secret, tc.template, "acme")
			if !maps.Equal(secret.Labels, tc.wantLabels) {
				t.Errorf("labels\n got %v\nwant %v", secret.Labels, tc.wantLabels)
			}
			if !maps.Equal(secret.Annotations, tc.wantAnnotations) {
				t.Errorf("annotations\n got %v\nwant %v", secret.Annotations, tc.wantAnnotations)
			}
		})
	}
}
