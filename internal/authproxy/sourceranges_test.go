package authproxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/clientaddr"
	"github.com/octopods/octopods-operator/internal/keyindex"
)

// A key with allowedSourceRanges works only from them, on every
// interface, with the client address decided the same way: the peer, the
// right-most untrusted X-Forwarded-For hop behind a trusted proxy, or
// Envoy's source.address.
func TestSourceRangesOnEveryInterface(t *testing.T) {
	f := newFixture(t)
	restricted := mustGenerate(t)
	f.ix.Set(keyindex.Keys{Namespace: "team-a", Name: "initech", Workspace: "initech", Current: apikey.DigestOf(restricted), HasCurrent: true,
		AllowedSourceRanges: clientaddr.Ranges([]string{"203.0.113.0/24", "2001:db8:1::/48"})})
	lb := clientaddr.Trusted{netip.MustParsePrefix("10.0.0.0/8")}
	trusting := newFixtureHandlers(f, lb)
	grpc := newExtAuthz(f, io.Discard)
	grpc.Trusted = lb
	clock := time.Now()

	for _, tc := range []struct {
		name  string
		h     *Handler
		peer  string
		xff   string
		admit bool
		from  string // the address recorded for a refusal
	}{
		{"reverse proxy, peer in range", f.reverse, "203.0.113.9:5000", "", true, ""},
		{"reverse proxy, IPv6 peer in range", f.reverse, "[2001:db8:1::5]:5000", "", true, ""},
		{"reverse proxy, peer elsewhere", f.reverse, "192.0.2.7:5000", "", false, "192.0.2.7"},
		{"spoofed X-Forwarded-For from an untrusted peer", f.reverse, "192.0.2.7:5000", "203.0.113.9", false, "192.0.2.7"},
		{"forward auth, no trusted proxies: the gateway's address", f.fwd, "10.1.1.1:5000", "203.0.113.9", false, "10.1.1.1"},
		{"forward auth behind a trusted proxy: the client in X-Forwarded-For", trusting.fwd, "10.1.1.1:5000", "203.0.113.9", true, ""},
		{"trusted proxy, client elsewhere", trusting.fwd, "10.1.1.1:5000", "192.0.2.66", false, "192.0.2.66"},
		{"trusted proxy, a client-prepended hop is not believed", trusting.reverse, "10.1.1.1:5000", "203.0.113.9, 192.0.2.66", false, "192.0.2.66"},
	} {
		// One attempt a second is kept: each case is a second later.
		clock = clock.Add(time.Second)
		tc.h.now = func() time.Time { return clock }
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/v1/messages", nil)
			r.RemoteAddr = tc.peer
			r.Header.Set(HeaderAuth, restricted)
			if tc.xff != "" {
				r.Header.Set("X-Forwarded-For", tc.xff)
			}
			w := httptest.NewRecorder()
			tc.h.ServeHTTP(w, r)
			res := w.Result()
			body, _ := io.ReadAll(res.Body)
			if tc.admit {
				if res.StatusCode != http.StatusOK {
					t.Fatalf("refused: %d %s", res.StatusCode, body)
				}
				return
			}
			if res.StatusCode != http.StatusForbidden {
				t.Fatalf("status %d %s, want 403", res.StatusCode, body)
			}
			if tc.h.proxy != nil && !strings.Contains(string(body), `"source_not_allowed"`) {
				t.Errorf("body %s", body)
			}
			if tc.h.proxy == nil && res.Header.Get(HeaderAuthError) != OutcomeSourceNotAllowed {
				t.Errorf("forward auth: %s = %q", HeaderAuthError, res.Header.Get(HeaderAuthError))
			}
			if !sawDisallowed(f.ix, "initech", tc.from) {
				t.Errorf("the attempt from %s was not recorded for status.lastDisallowedSourceUse", tc.from)
			}
		})
	}

	t.Run("gRPC: Envoy's source.address", func(t *testing.T) {
		check := func(source, xff string) *authv3.CheckResponse {
			headers := map[string]string{"x-octopods-auth": restricted}
			if xff != "" {
				headers["x-forwarded-for"] = xff
			}
			req := checkRequest(headers)
			req.Attributes.Source = &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: source}}}}
			res, _ := grpc.Check(context.Background(), req)
			return res
		}
		if res := check("203.0.113.9", ""); res.GetStatus().GetCode() != 0 {
			t.Fatalf("in range: %v", res.GetStatus())
		}
		assertDenied(t, check("192.0.2.7", "203.0.113.9"), http.StatusForbidden, 7, OutcomeSourceNotAllowed)
		if res := check("10.9.9.9", "203.0.113.9"); res.GetStatus().GetCode() != 0 {
			t.Fatalf("behind a trusted gateway hop: %v", res.GetStatus())
		}
	})

	t.Run("a key without ranges works from anywhere", func(t *testing.T) {
		if res := serve(f.reverse, http.Header{HeaderAuth: {f.current}}); res.StatusCode != http.StatusOK {
			t.Fatalf("status %d", res.StatusCode)
		}
	})
}

// newFixtureHandlers are f's two handlers, trusting proxies.
func newFixtureHandlers(f *fixture, trusted clientaddr.Trusted) *fixture {
	g := *f
	rev, fwd := *f.reverse, *f.fwd
	rev.SetTrustedProxies(trusted)
	fwd.SetTrustedProxies(trusted)
	g.reverse, g.fwd = &rev, &fwd
	return &g
}

// sawDisallowed reports whether the index holds, pending, an attempt of the
// workspace's key from the address.
func sawDisallowed(ix *keyindex.Index, workspace, from string) bool {
	for _, u := range ix.PendingAt(time.Now(), 0) {
		if u.Workspace == workspace && u.DisallowedSourceUse != nil && u.DisallowedSourceUse.ClientAddress == from {
			return true
		}
	}
	return false
}

// The check costs a key without ranges nothing, and one with ranges no
// allocation.
func TestSourceRangeDecisionDoesNotAllocate(t *testing.T) {
	f := newFixture(t)
	restricted := mustGenerate(t)
	f.ix.Set(keyindex.Keys{Namespace: "team-a", Name: "initech", Workspace: "initech", Current: apikey.DigestOf(restricted), HasCurrent: true,
		AllowedSourceRanges: clientaddr.Ranges([]string{"203.0.113.0/24"})})
	lb := clientaddr.Trusted{netip.MustParsePrefix("10.0.0.0/8")}
	keys, xff := []string{restricted}, []string{"203.0.113.9"}
	now := time.Now()
	if n := testing.AllocsPerRun(1000, func() {
		if d := Authorize(&Policy{Index: f.ix, Scopes: f.fwd.Scopes, Trusted: lb}, keys, "/v1/messages", ClientSource{"10.1.1.1:5000", xff}, now); d.Verdict != Admitted {
			t.Fatalf("verdict %v", d.Verdict)
		}
	}); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}
