package authproxy

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
)

// The proxy decodes listed keys into its own small type: through the real
// REST client and codec, every key must come out of PublishedKeys exactly as
// from the full object, whatever its state.
func TestListDecodesWhatPublishedKeysReads(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	at := func(d time.Duration) *metav1.Time { return &metav1.Time{Time: now.Add(d)} }
	digest := func() string { return apikey.DigestOf(mustGenerate(t)).String() }
	full := func(name string) octopodsv1alpha1.WorkspaceAPIKey {
		k := octopodsv1alpha1.WorkspaceAPIKey{
			TypeMeta: metav1.TypeMeta{APIVersion: octopodsv1alpha1.GroupVersion.String(), Kind: "WorkspaceAPIKey"},
			ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: name, ResourceVersion: "42", Annotations: map[string]string{"a": "b"},
				ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "octopods-operator", Operation: metav1.ManagedFieldsOperationUpdate}}},
			Spec: octopodsv1alpha1.WorkspaceAPIKeySpec{WorkspaceName: name + "-ws"},
		}
		k.Status.IssuedAt, k.Status.RotatedAt, k.Status.LastUsedTime = at(-time.Hour), at(-time.Minute), at(-time.Second)
		k.Status.PublishedKeys = []octopodsv1alpha1.PublishedKey{{KeyID: "cur", Digest: digest()}, {KeyID: "prev", Digest: digest(), ValidUntil: at(time.Hour)}}
		k.Status.RevokedKeys = []octopodsv1alpha1.RevokedKey{{KeyID: "old", Digest: digest(), RevokedAt: *at(-time.Hour)}}
		k.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "KeyIssued", LastTransitionTime: *at(-time.Hour)}}
		return k
	}
	deleting, unused, expired := full("deleting"), full("unused"), full("expired")
	deleting.DeletionTimestamp = at(-time.Second)
	unused.Status.LastUsedTime = nil
	expired.Status.PublishedKeys[1].ValidUntil = at(-time.Second)
	list := octopodsv1alpha1.WorkspaceAPIKeyList{ListMeta: metav1.ListMeta{ResourceVersion: "43", Continue: "next"},
		Items: []octopodsv1alpha1.WorkspaceAPIKey{full("acme"), deleting, unused, expired}}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(list)
	}))
	defer srv.Close()
	rc, err := NewOctopodsRESTClient(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	got, err := NewKeysClient(rc).List(context.Background(), octopodsv1alpha1.WorkspaceKey, "", metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != "43" || got.Continue != "next" || len(got.Items) != len(list.Items) {
		t.Fatalf("list metadata %+v and %d items; want resourceVersion 43, continue next, %d items", got.ListMeta, len(got.Items), len(list.Items))
	}
	for i := range list.Items {
		want, have := PublishedKeys(&list.Items[i], now), PublishedKeys(got.Items[i], now)
		if !reflect.DeepEqual(want, have) {
			t.Errorf("%s: decoded as %+v; the full object gives %+v", list.Items[i].Name, have, want)
		}
	}

	// A channel key: its owner field and its published scope.
	ch := octopodsv1alpha1.ChannelAPIKey{
		TypeMeta:   metav1.TypeMeta{APIVersion: octopodsv1alpha1.GroupVersion.String(), Kind: "ChannelAPIKey"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "sms-1", ResourceVersion: "44"},
		Spec:       octopodsv1alpha1.ChannelAPIKeySpec{ChannelName: "sms-1"},
	}
	acme := full("acme")
	ch.Status = acme.Status
	ch.Status.Scope = &octopodsv1alpha1.KeyScope{Type: "channel", Workspace: "acme", Channel: "sms-1", ChannelType: "SMS"}
	channels := octopodsv1alpha1.ChannelAPIKeyList{Items: []octopodsv1alpha1.ChannelAPIKey{ch}}
	srv2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(channels)
	}))
	defer srv2.Close()
	rc2, err := NewOctopodsRESTClient(&rest.Config{Host: srv2.URL})
	if err != nil {
		t.Fatal(err)
	}
	page, err := NewKeysClient(rc2).List(context.Background(), octopodsv1alpha1.ChannelKey, "", metav1.ListOptions{})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("channel list: %v, %d items", err, len(page.Items))
	}
	want, have := PublishedKeys(&ch, now), PublishedKeys(page.Items[0], now)
	if !reflect.DeepEqual(want, have) || have.Type != "channel" || have.ChannelType != "SMS" || have.Workspace != "acme" || !have.HasCurrent {
		t.Errorf("channel key decoded as %+v; the full object gives %+v", have, want)
	}
}
