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

// Through the real REST client and codec, a listed slice comes out as the
// manager wrote it, list metadata included.
func TestListDecodesSlices(t *testing.T) {
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	d := apikey.DigestOf(mustGenerate(t))
	slice := octopodsv1alpha1.KeyDigestSlice{
		TypeMeta:   metav1.TypeMeta{APIVersion: octopodsv1alpha1.GroupVersion.String(), Kind: "KeyDigestSlice"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "keys-x1", ResourceVersion: "42"},
		Keys: []octopodsv1alpha1.SlicedKey{{Kind: "ChannelAPIKey", Name: "sms-1", Owner: "sms-1",
			Scope:         octopodsv1alpha1.KeyScope{Type: "channel", Workspace: "acme", Channel: "sms-1", ChannelType: "SMS", RateLimit: &octopodsv1alpha1.RateLimit{RequestsPerSecond: 5}},
			PublishedKeys: []octopodsv1alpha1.PublishedKey{{KeyID: d.ID(), Digest: d.String()}, {KeyID: d.ID(), Digest: d.String(), ValidUntil: &now}},
			RevokedKeys:   []octopodsv1alpha1.RevokedDigest{{KeyID: d.ID(), Digest: d.String(), RevokedAt: now}}}},
	}
	list := octopodsv1alpha1.KeyDigestSliceList{ListMeta: metav1.ListMeta{ResourceVersion: "43", Continue: "next"}, Items: []octopodsv1alpha1.KeyDigestSlice{slice}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/apis/octopods.io/v1alpha1/namespaces/team-a/keydigestslices" || r.URL.Query().Get("labelSelector") != slicesSelector {
			t.Errorf("asked %s", r.URL)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(list)
	}))
	defer srv.Close()
	rc, err := NewOctopodsRESTClient(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	got, err := NewSlicesClient(rc).List(context.Background(), "team-a", metav1.ListOptions{LabelSelector: slicesSelector})
	if err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != "43" || got.Continue != "next" || len(got.Items) != 1 {
		t.Fatalf("list metadata %+v and %d items; want resourceVersion 43, continue next, 1 item", got.ListMeta, len(got.Items))
	}
	if !reflect.DeepEqual(got.Items[0].Keys, slice.Keys) {
		t.Errorf("decoded %+v; want %+v", got.Items[0].Keys, slice.Keys)
	}
}
