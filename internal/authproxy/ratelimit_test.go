package authproxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/keyindex"
	"github.com/octopods/octopods-operator/internal/throttle"
)

// limitedKey adds a workspace whose key is limited to 5 a second, burst 5.
func limitedKey(t testing.TB, f *fixture, name string) string {
	key := mustGenerate(t)
	f.ix.Set(keyindex.Keys{Namespace: "team-a", Name: name, Workspace: name, Current: apikey.DigestOf(key), HasCurrent: true,
		RateLimit: keyindex.RateLimit{PerSecond: 5, Burst: 5}})
	return key
}

// A key with requestsPerSecond 5, burst 5, under a burst of 50: 5 pass,
// 45 get 429 (never 401) with Retry-After and the draft's RateLimit
// fields, on every interface; another workspace's key is untouched.
func TestRateLimitOnEveryInterface(t *testing.T) {
	for _, iface := range []string{"reverse proxy", "forward auth", "gRPC"} {
		t.Run(iface, func(t *testing.T) {
			f := newFixture(t)
			limited := limitedKey(t, f, "initech")
			clock := time.Now()
			f.reverse.now, f.fwd.now = func() time.Time { return clock }, func() time.Time { return clock }
			grpc := newExtAuthz(f, io.Discard)
			grpc.now = func() time.Time { return clock }
			type answer struct {
				status  int
				headers http.Header
				body    string
			}
			send := func(key string) answer {
				if iface == "gRPC" {
					res, _ := grpc.Check(context.Background(), checkRequest(map[string]string{"x-octopods-auth": key}))
					a := answer{status: http.StatusOK, headers: http.Header{}}
					if d := res.GetDeniedResponse(); d != nil {
						a.status, a.body = int(d.GetStatus().GetCode()), d.GetBody()
						for _, h := range d.GetHeaders() {
							a.headers.Set(h.GetHeader().GetKey(), h.GetHeader().GetValue())
						}
						if codes.Code(res.GetStatus().GetCode()) == codes.Unauthenticated {
							a.status = http.StatusUnauthorized
						}
					}
					return a
				}
				h := f.reverse
				if iface == "forward auth" {
					h = f.fwd
				}
				res := serve(h, http.Header{HeaderAuth: {key}})
				body, _ := io.ReadAll(res.Body)
				return answer{res.StatusCode, res.Header, string(body)}
			}
			admitted, limitedCount := 0, 0
			for range 50 {
				a := send(limited)
				switch a.status {
				case http.StatusOK:
					admitted++
				case http.StatusTooManyRequests:
					limitedCount++
					if s, err := strconv.Atoi(a.headers.Get("Retry-After")); err != nil || s < 1 {
						t.Fatalf("Retry-After %q", a.headers.Get("Retry-After"))
					}
					if a.headers.Get("RateLimit-Policy") != `"key";q=5;w=1` || a.headers.Get("RateLimit") != `"key";r=0;t=1` {
						t.Fatalf("RateLimit-Policy %q, RateLimit %q", a.headers.Get("RateLimit-Policy"), a.headers.Get("RateLimit"))
					}
					if iface == "forward auth" && a.headers.Get(HeaderAuthError) != OutcomeRateLimited {
						t.Fatalf("%s = %q", HeaderAuthError, a.headers.Get(HeaderAuthError))
					}
					if iface != "forward auth" && a.body != `{"error":"rate_limited"}`+"\n" {
						t.Fatalf("body %q", a.body)
					}
				default:
					t.Fatalf("a limited key answered %d, never anything but 200 or 429", a.status)
				}
			}
			if admitted != 5 || limitedCount != 45 {
				t.Fatalf("admitted %d, limited %d; want 5 and 45", admitted, limitedCount)
			}
			if a := send(f.current); a.status != http.StatusOK {
				t.Fatalf("another workspace's key answered %d", a.status)
			}
			clock = clock.Add(time.Second) // five more tokens
			for i := range 5 {
				if a := send(limited); a.status != http.StatusOK {
					t.Fatalf("request %d a second later: %d", i, a.status)
				}
			}
			if a := send(limited); a.status != http.StatusTooManyRequests {
				t.Fatalf("the sixth a second later: %d", a.status)
			}
		})
	}
}

// The budget belongs to the key object: the previous and the new key of a
// rotation share it, and the rotation neither resets nor doubles it.
func TestRateLimitSurvivesRotation(t *testing.T) {
	f := newFixture(t)
	old := limitedKey(t, f, "initech")
	now := time.Now()
	for range 4 {
		if d := Authorize(&f.reverse.Policy, []string{old}, "/v1/messages", ClientSource{}, now); d.Verdict != Admitted {
			t.Fatalf("verdict %v", d.Verdict)
		}
	}
	next := mustGenerate(t)
	f.ix.Set(keyindex.Keys{Namespace: "team-a", Name: "initech", Workspace: "initech", Current: apikey.DigestOf(next), HasCurrent: true,
		Previous: apikey.DigestOf(old), HasPrevious: true, PreviousValidUntil: now.Add(time.Hour), RateLimit: keyindex.RateLimit{PerSecond: 5, Burst: 5}})
	if d := Authorize(&f.reverse.Policy, []string{next}, "/v1/messages", ClientSource{}, now); d.Verdict != Admitted {
		t.Fatalf("the fifth request, with the new key: %v", d.Verdict)
	}
	for _, k := range []string{next, old} {
		if d := Authorize(&f.reverse.Policy, []string{k}, "/v1/messages", ClientSource{}, now); d.Verdict != RateLimited {
			t.Fatalf("the budget was reset by the rotation: %v", d.Verdict)
		}
	}
}

// Replicas share a limit: each enforces its part, the burst rounded up.
func TestRateLimitShare(t *testing.T) {
	f := newFixture(t)
	limited := limitedKey(t, f, "initech")
	f.ix.SetReplicas(2)
	now := time.Now()
	admitted := 0
	for range 10 {
		if Authorize(&f.reverse.Policy, []string{limited}, "/v1/messages", ClientSource{}, now).Verdict == Admitted {
			admitted++
		}
	}
	if admitted != 3 { // ceil(5/2)
		t.Fatalf("one of 2 replicas admitted %d of a burst of 5, want 3", admitted)
	}
}

// 1,000 invalid keys from one address: after --throttle-failures the
// source gets 429 before any key lookup, whatever it sends, valid key and
// header spelling tricks included; another source's valid key still works.
func TestThrottleFailingSource(t *testing.T) {
	f := newFixture(t)
	f.reverse.Throttle = throttle.New(throttle.Config{Failures: 100, Window: time.Minute})
	guesser := func(h http.Header) *http.Response {
		r := httptest.NewRequest(http.MethodGet, "/v1/messages", nil)
		r.RemoteAddr = "203.0.113.66:5000"
		r.Header = h
		w := httptest.NewRecorder()
		f.reverse.ServeHTTP(w, r)
		return w.Result()
	}
	throttled := 0
	for i := range 1000 {
		h := http.Header{HeaderAuth: {mustGenerate(t)}}
		switch i % 3 {
		case 1:
			h = http.Header{HeaderAuth: {mustGenerate(t), f.current}} // repeated header
		case 2:
			h = http.Header{HeaderAuth: {fmt.Sprintf("opk_%049d", i)}} // malformed
		}
		res := guesser(h)
		if res.StatusCode == http.StatusTooManyRequests {
			throttled++
			if res.Header.Get("Retry-After") == "" {
				t.Fatal("no Retry-After")
			}
		}
	}
	if throttled != 900 {
		t.Fatalf("%d of 1,000 throttled, want all after the first 100", throttled)
	}
	for _, h := range []http.Header{{HeaderAuth: {f.current}}, {"x-octopods-auth": {f.current}}, {"X_octopods_auth": {f.current}}} {
		if res := guesser(h); res.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("a throttled source got %d with %v", res.StatusCode, h)
		}
	}
	if res := serve(f.reverse, http.Header{HeaderAuth: {f.current}}); res.StatusCode != http.StatusOK {
		t.Fatalf("another source's valid key: %d", res.StatusCode)
	}
	if got := counterValue(t, f.reverse.Metrics, "octopods_auth_proxy_throttled_total"); got != 903 {
		t.Fatalf("throttled_total %v", got)
	}
}

func counterValue(t *testing.T, m *Metrics, name string) float64 {
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// Buckets for 100,000 active objects fit in 32 MB, and idle ones go.
func TestBucketMemory(t *testing.T) {
	ix := keyindex.New()
	keys := make([]string, 100_000)
	for i := range keys {
		keys[i] = mustGenerate(t)
		ix.Set(keyindex.Keys{Namespace: "ns", Name: fmt.Sprint("ws-", i), Workspace: fmt.Sprint("ws-", i), Current: apikey.DigestOf(keys[i]), HasCurrent: true,
			RateLimit: keyindex.RateLimit{PerSecond: 5, Burst: 5}})
	}
	p := &Policy{Index: ix, Scopes: newFixture(t).fwd.Scopes}
	now := time.Now()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, k := range keys {
		Authorize(p, []string{k}, "/v1/messages", ClientSource{}, now)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	// Allocated by the loop (the buckets, and nothing else: the decision
	// allocates nothing), which bounds what they keep.
	allocated := after.TotalAlloc - before.TotalAlloc
	perObject := float64(allocated) / float64(len(keys))
	total := float64(allocated) / (1 << 20)
	t.Logf("FIGURE rate-limit buckets: 100,000 active objects take %.1f MiB (%.0f bytes each; goal 32 MB); live heap grew by %.1f MiB",
		total, perObject, (float64(after.HeapAlloc)-float64(before.HeapAlloc))/(1<<20))
	if total > 30.5 { // 32 MB
		t.Fatalf("%.1f MiB", total)
	}
	if kept := ix.DropIdleBuckets(now.Add(2 * time.Second)); kept != 0 {
		t.Fatalf("%d buckets kept once refilled", kept)
	}
}
