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

// ListPages asks for page n+1 before it hands page n over when the list's
// metadata comes last, as the API server encodes it (sorted keys), and
// still hands every page in order, once, when it comes first (no guess).
func TestListPagesAsksForTheNextPageWhileOneIsHandled(t *testing.T) {
	for _, tc := range []struct {
		name         string
		metadataLast bool
		wantPrefetch bool
	}{
		{"metadata last, as the API server writes it", true, true},
		{"metadata first", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			asked := make(chan string, 8)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				token := r.URL.Query().Get("continue")
				asked <- token
				next := map[string]string{"": "p2", "p2": "p3", "p3": ""}[token]
				item := map[string]any{"metadata": map[string]any{"name": "keys-" + token, "namespace": "team-a", "resourceVersion": "7"}}
				meta := map[string]any{"resourceVersion": "9", "continue": next}
				w.Header().Set("Content-Type", "application/json")
				items, _ := json.Marshal([]any{item})
				metaJSON, _ := json.Marshal(meta)
				head := `{"apiVersion":"octopods.io/v1alpha1","kind":"KeyDigestSliceList",`
				if tc.metadataLast {
					_, _ = w.Write([]byte(head + `"items":` + string(items) + `,"metadata":` + string(metaJSON) + `}`))
				} else {
					_, _ = w.Write([]byte(head + `"metadata":` + string(metaJSON) + `,"items":` + string(items) + `}`))
				}
			}))
			defer srv.Close()
			rc, err := NewOctopodsRESTClient(&rest.Config{Host: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			seen := false
			err = NewSlicesClient(rc).(slicesClient).ListPages(context.Background(), "team-a", metav1.ListOptions{Limit: 1}, func(page *octopodsv1alpha1.KeyDigestSliceList) error {
				got = append(got, page.Items[0].Name)
				if !seen { // this page's own request, unless it was seen ahead
					<-asked
				}
				seen = false
				if page.Continue == "" {
					return nil
				}
				select { // the next page is asked for while this one is handled
				case token := <-asked:
					seen = true
					if token != page.Continue {
						t.Errorf("asked for continue %q while handling a page whose continue is %q", token, page.Continue)
					}
					if !tc.wantPrefetch {
						t.Errorf("asked for %q ahead without a guess", token)
					}
				case <-time.After(2 * time.Second):
					if tc.wantPrefetch {
						t.Errorf("page %q handled without its next page asked for", page.Items[0].Name)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"keys-", "keys-p2", "keys-p3"}; !reflect.DeepEqual(got, want) {
				t.Errorf("pages %v; want %v", got, want)
			}
		})
	}
}
