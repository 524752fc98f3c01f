package testutil

import (
	"context"

	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
)

// Workspace is a valid Workspace for tests, displayed as "Workspace <name>".
func Workspace(ns, name string) *octopodsv1alpha1.Workspace {
	return &octopodsv1alpha1.Workspace{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       octopodsv1alpha1.WorkspaceSpec{DisplayName: "Workspace " + name, Provider: octopodsv1alpha1.ProviderIntercom},
	}
}

// APIKey is the workspace's key as a client that fills the spec sends it.
func APIKey(ns, workspace string) *octopodsv1alpha1.WorkspaceAPIKey {
	return &octopodsv1alpha1.WorkspaceAPIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: octopodsv1alpha1.KeyName(workspace)},
		Spec:       octopodsv1alpha1.WorkspaceAPIKeySpec{WorkspaceName: workspace},
	}
}

// BareAPIKey is what `kubectl create` with just a name sends: the webhook
// fills the rest.
func BareAPIKey(ns, workspace string) *octopodsv1alpha1.WorkspaceAPIKey {
	return &octopodsv1alpha1.WorkspaceAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: octopodsv1alpha1.KeyName(workspace)}}
}

// GetKey reads the workspace's key through c; a failed read fails g.
func GetKey(g gomega.Gomega, c client.Reader, ns, workspace string) *octopodsv1alpha1.WorkspaceAPIKey {
	k := &octopodsv1alpha1.WorkspaceAPIKey{}
	g.ExpectWithOffset(2, c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: octopodsv1alpha1.KeyName(workspace)}, k)).To(gomega.Succeed())
	return k
}

// IssuedKey waits (with the suite's Eventually timeouts, or intervals)
// until the workspace's key is Ready and its Secret holds a valid key that
// status.keyID names and status.publishedKeys publishes, and returns it.
func IssuedKey(c client.Reader, ns, workspace string, intervals ...any) string {
	return issuedKey(c, BareAPIKey(ns, workspace), intervals...)
}

// IssuedKeyOf is IssuedKey for a key object of any kind (its namespace and
// name set; it is read into).
func IssuedKeyOf(c client.Reader, key octopodsv1alpha1.KeyObject, intervals ...any) string {
	return issuedKey(c, key, intervals...)
}

func issuedKey(c client.Reader, key octopodsv1alpha1.KeyObject, intervals ...any) string {
	var value string
	gomega.EventuallyWithOffset(3, func(g gomega.Gomega) {
		g.Expect(c.Get(context.Background(), client.ObjectKeyFromObject(key), key)).To(gomega.Succeed())
		st := key.KeyStatus()
		g.Expect(meta.IsStatusConditionTrue(st.Conditions, octopodsv1alpha1.ConditionReady)).To(gomega.BeTrue(), "the key is Ready")
		s := &corev1.Secret{}
		g.Expect(c.Get(context.Background(), client.ObjectKey{Namespace: key.GetNamespace(), Name: octopodsv1alpha1.EffectiveSecretName(key)}, s)).To(gomega.Succeed())
		value = string(s.Data[octopodsv1alpha1.SecretKeyAPIKey])
		g.Expect(apikey.Validate(value)).To(gomega.Succeed())
		g.Expect(st.KeyID).To(gomega.Equal(apikey.ID(value)))
		// Published too, where the proxies read it: mid-rotation, the old key
		// is withdrawn from the KeyDigestSlices (refused) before the Secret
		// is rewritten, while the Secret and the status still name it.
		g.Expect(slicedDigests(g, c, key)).To(gomega.ContainElement(apikey.DigestOf(value).String()), "the key is in a KeyDigestSlice")
	}, intervals...).Should(gomega.Succeed())
	return value
}

// slicedDigests are the digests the KeyDigestSlices of key's namespace
// admit for key.
func slicedDigests(g gomega.Gomega, c client.Reader, key octopodsv1alpha1.KeyObject) []string {
	slices := &octopodsv1alpha1.KeyDigestSliceList{}
	g.Expect(c.List(context.Background(), slices, client.InNamespace(key.GetNamespace()))).To(gomega.Succeed())
	var digests []string
	for d := range AdmittedDigests(slices.Items, key.KeyKind().Kind, key.GetName()) {
		digests = append(digests, d)
	}
	return digests
}

// AdmittedDigests are the digests one namespace's slices admit for the key
// object (kind, name), as a proxy reads them: published by a slice of keys
// and not listed by the namespace's withdrawal slice; digest → the slice
// of keys that publishes it.
func AdmittedDigests(slices []octopodsv1alpha1.KeyDigestSlice, kind, name string) map[string]string {
	admitted, withdrawn := map[string]string{}, map[string]bool{}
	for _, slice := range slices {
		for _, w := range slice.WithdrawnKeys {
			withdrawn[w.Digest] = true
		}
		for _, entry := range slice.Keys {
			if entry.Kind != kind || entry.Name != name {
				continue
			}
			for _, p := range entry.PublishedKeys {
				admitted[p.Digest] = slice.Name
			}
		}
	}
	for d := range withdrawn {
		delete(admitted, d)
	}
	return admitted
}

// Channel is a valid Channel of workspace for tests.
func Channel(ns, name, workspace string, t octopodsv1alpha1.ChannelType) *octopodsv1alpha1.Channel {
	return &octopodsv1alpha1.Channel{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       octopodsv1alpha1.ChannelSpec{WorkspaceName: workspace, Type: t, DisplayName: "Channel " + name},
	}
}

// ChannelAPIKey is the channel's key as a client that fills the spec sends it.
func ChannelAPIKey(ns, channel string) *octopodsv1alpha1.ChannelAPIKey {
	return &octopodsv1alpha1.ChannelAPIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: octopodsv1alpha1.KeyName(channel)},
		Spec:       octopodsv1alpha1.ChannelAPIKeySpec{ChannelName: channel},
	}
}

// WhatsAppBusinessAccount is a valid account of workspace for tests.
func WhatsAppBusinessAccount(ns, name, workspace string) *octopodsv1alpha1.WhatsAppBusinessAccount {
	return &octopodsv1alpha1.WhatsAppBusinessAccount{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       octopodsv1alpha1.WhatsAppBusinessAccountSpec{WorkspaceName: workspace, DisplayName: "WABA " + name, PhoneNumbers: []string{"+4915112345678"}},
	}
}

// WhatsAppAPIKey is the account's key as a client that fills the spec sends it.
func WhatsAppAPIKey(ns, account string) *octopodsv1alpha1.WhatsAppAPIKey {
	return &octopodsv1alpha1.WhatsAppAPIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: octopodsv1alpha1.KeyName(account)},
		Spec:       octopodsv1alpha1.WhatsAppAPIKeySpec{WhatsAppBusinessAccountName: account},
	}
}
