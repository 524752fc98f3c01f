package authproxy

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/keyindex"
	"github.com/octopods/octopods-operator/internal/scope"
)

// scopedKeys adds an SMS channel key and a WhatsApp key of acme to f.
func scopedKeys(t *testing.T, f *fixture) (sms, whatsApp string) {
	sms, whatsApp = mustGenerateWith(t, apikey.PrefixChannel), mustGenerateWith(t, apikey.PrefixWhatsApp)
	f.ix.Set(keyindex.Keys{Namespace: "team-a", Name: "sms-1", Workspace: "acme", Scope: keyindex.Scope{Type: scope.TypeChannel, ChannelType: "SMS"},
		Current: apikey.DigestOf(sms), HasCurrent: true})
	f.ix.Set(keyindex.Keys{Namespace: "team-a", Name: "waba", Workspace: "acme", Scope: keyindex.Scope{Type: scope.TypeWhatsApp},
		Current: apikey.DigestOf(whatsApp), HasCurrent: true})
	return sms, whatsApp
}

func mustGenerateWith(t testing.TB, prefix string) string {
	k, err := apikey.GenerateWith(prefix)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestScopeOnEveryInterface: each key type is admitted on its own family
// and refused with 403 key_scope_mismatch elsewhere, the same through the
// reverse proxy, forward auth (the path from X-Original-URI or
// X-Forwarded-Uri) and gRPC Check; admitted requests carry the identity of
// their type.
func TestScopeOnEveryInterface(t *testing.T) {
	f := newFixture(t)
	sms, whatsApp := scopedKeys(t, f)
	grpc := newExtAuthz(f, io.Discard)
	tests := []struct {
		name, key, path string
		admit           bool
		identity        map[string]string
	}{
		{"SMS channel key on SMS", sms, "/api/v1/sms/send", true, map[string]string{
			"X-Octopods-Key-Type": "channel", "X-Octopods-Channel": "sms-1", "X-Octopods-Channel-Type": "SMS", "X-Octopods-Workspace": "acme"}},
		{"SMS channel key on WhatsApp", sms, "/api/v1/whatsapp/messages", false, nil},
		{"SMS channel key on Viber", sms, "/api/v1/vbm/send", false, nil},
		{"SMS channel key elsewhere", sms, "/api/v1/contacts", false, nil},
		{"SMS channel key, WhatsApp spelled around the rules", sms, "/api/v1/sms/..%2Fwhatsapp/messages", false, nil},
		{"WhatsApp key on WhatsApp", whatsApp, "/api/v1/whatsapp/messages", true, map[string]string{
			"X-Octopods-Key-Type": "whatsapp", "X-Octopods-Whatsapp-Business-Account": "waba", "X-Octopods-Workspace": "acme"}},
		{"WhatsApp key on SMS", whatsApp, "/api/v1/sms/send", false, nil},
		{"workspace key on SMS", f.current, "/api/v1/sms/send", true, map[string]string{"X-Octopods-Key-Type": "workspace"}},
		{"workspace key on WhatsApp", f.current, "/api/v1/whatsapp/messages", false, nil},
		{"workspace key on WhatsApp in capitals", f.current, "/API/V1/WHATSAPP/messages", false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Reverse proxy: the request's own path.
			r := httptest.NewRequest(http.MethodGet, "http://proxy"+tc.path+"?q=1", nil)
			r.Header.Set(HeaderAuth, tc.key)
			w := httptest.NewRecorder()
			f.reverse.ServeHTTP(w, r)
			res := w.Result()
			body, _ := io.ReadAll(res.Body)
			if tc.admit {
				var echoed http.Header
				if res.StatusCode != http.StatusOK || json.Unmarshal(body, &echoed) != nil {
					t.Fatalf("reverse proxy: %d %s", res.StatusCode, body)
				}
				for name, want := range tc.identity {
					if got := echoed.Get(name); got != want {
						t.Errorf("upstream saw %s = %q, want %q", name, got, want)
					}
				}
			} else if res.StatusCode != http.StatusForbidden || !strings.Contains(string(body), `"error":"key_scope_mismatch"`) || !strings.Contains(string(body), "this path takes a") {
				t.Errorf("reverse proxy: %d %s, want 403 key_scope_mismatch naming the key type", res.StatusCode, body)
			}

			// Forward auth: the path the gateway names, nginx's or Traefik's way.
			for _, header := range []string{"X-Original-Uri", "X-Forwarded-Uri"} {
				r := httptest.NewRequest(http.MethodGet, "http://proxy/auth", nil)
				r.Header.Set(HeaderAuth, tc.key)
				r.Header.Set(header, tc.path+"?q=1")
				w := httptest.NewRecorder()
				f.fwd.ServeHTTP(w, r)
				want := http.StatusOK
				if !tc.admit {
					want = http.StatusForbidden
				}
				if w.Code != want || (!tc.admit && w.Header().Get(HeaderAuthError) != OutcomeScopeMismatch) {
					t.Errorf("forward auth (%s): %d %q, want %d", header, w.Code, w.Header().Get(HeaderAuthError), want)
				}
				for name, v := range tc.identity {
					if got := w.Header().Get(name); tc.admit && got != v {
						t.Errorf("forward auth: %s = %q, want %q", name, got, v)
					}
				}
			}

			// gRPC Check.
			req := checkRequest(map[string]string{"x-octopods-auth": tc.key, "x-octopods-channel": "forged"})
			req.Attributes.Request.Http.Path = tc.path + "?q=1"
			got, err := grpc.Check(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.admit {
				assertDenied(t, got, http.StatusForbidden, codes.PermissionDenied, OutcomeScopeMismatch)
				return
			}
			headers := map[string]string{}
			for _, h := range got.GetOkResponse().GetHeaders() {
				headers[http.CanonicalHeaderKey(h.GetHeader().GetKey())] = h.GetHeader().GetValue()
			}
			for name, v := range tc.identity {
				if headers[name] != v {
					t.Errorf("gRPC: %s = %q, want %q (%v)", name, headers[name], v, headers)
				}
			}
			md := got.GetDynamicMetadata().GetFields()
			if md["keyType"].GetStringValue() != tc.identity["X-Octopods-Key-Type"] {
				t.Errorf("gRPC dynamic metadata %v", md)
			}
			if tc.identity["X-Octopods-Channel"] == "" && !contains(got.GetOkResponse().GetHeadersToRemove(), "x-octopods-channel") {
				t.Errorf("gRPC: a client's X-Octopods-Channel is not removed for a %s key", tc.identity["X-Octopods-Key-Type"])
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// A key that fails its scope is not counted as admitted nor recorded as
// used, and is logged with its key ID.
func TestScopeMismatchIsCountedAndLogged(t *testing.T) {
	f := newFixture(t)
	sms, _ := scopedKeys(t, f)
	r := httptest.NewRequest(http.MethodPost, "http://proxy/api/v1/whatsapp/messages", nil)
	r.Header.Set(HeaderAuth, sms)
	w := httptest.NewRecorder()
	f.reverse.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden {
		t.Fatalf("status %d", w.Code)
	}
	for _, u := range f.ix.Pending() {
		if u.Name == "sms-1" {
			t.Errorf("a request refused for its scope was recorded as a use of the key: %+v", u)
		}
	}
	for _, c := range f.ix.Counts() {
		if c.Name == "sms-1" {
			t.Errorf("a request refused for its scope was counted as admitted: %+v", c)
		}
	}
	ok := httptest.NewRequest(http.MethodPost, "http://proxy/api/v1/sms/send", nil)
	ok.Header.Set(HeaderAuth, sms)
	f.reverse.ServeHTTP(httptest.NewRecorder(), ok)
	used := false
	for _, u := range f.ix.Pending() {
		used = used || u.Name == "sms-1"
	}
	if !used {
		t.Error("an admitted request was not recorded as a use of the key")
	}
	if !strings.Contains(f.logs.String(), `"reason":"key_scope_mismatch"`) || !strings.Contains(f.logs.String(), `"key_id":"`+apikey.ID(sms)+`"`) || strings.Contains(f.logs.String(), sms[4:]) {
		t.Fatalf("log: %s", f.logs.String())
	}
}
