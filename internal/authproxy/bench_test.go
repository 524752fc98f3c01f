package authproxy

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/keyindex"
	"github.com/octopods/octopods-operator/internal/scope"
	"github.com/octopods/octopods-operator/internal/throttle"
)

// loadedIndex returns an index of n keys, a third of each type (workspace,
// SMS channel, WhatsApp), the keys, and for each a path its type takes.
func loadedIndex(b *testing.B, n int) (*keyindex.Index, []string, []string) {
	ix := keyindex.New()
	keys, paths := make([]string, n), make([]string, n)
	for i := range keys {
		keys[i] = mustGenerate(b)
		in := keyindex.Keys{Namespace: "bench", Name: fmt.Sprintf("ws-%d", i/3), Workspace: fmt.Sprintf("ws-%d", i/3),
			Current: apikey.DigestOf(keys[i]), HasCurrent: true, Scope: scopeOfBench(i)}
		paths[i] = [...]string{"/api/v1/vbm/send", "/api/v1/sms/send", "/api/v1/whatsapp/messages"}[i%3]
		ix.Set(in)
	}
	return ix, keys, paths
}

// BenchmarkAuthorize is the whole decision for an admitted request: header
// lookup, format and checksum, hashing, index lookup, constant-time compare.
func BenchmarkAuthorize(b *testing.B) {
	for _, n := range []int{10, 10_000, 100_000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			ix, keys, paths := loadedIndex(b, n)
			rules := scope.Default()
			headers, path := make([]http.Header, 1024), make([]string, 1024)
			for i := range headers {
				headers[i] = http.Header{HeaderAuth: {keys[(i*7919)%n]}}
				path[i] = paths[(i*7919)%n]
			}
			now := time.Now()
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				if d := Authorize(&Policy{Index: ix, Scopes: rules}, headers[i&1023][canonicalAuth], path[i&1023], ClientSource{}, now); d.Verdict != Admitted {
					b.Fatal("refused a loaded key")
				}
				i++
			}
		})
	}
}

// BenchmarkAuthorizeRefusal is the cost of refusing an unknown key.
func BenchmarkAuthorizeRefusal(b *testing.B) {
	ix, _, _ := loadedIndex(b, 100_000)
	rules := scope.Default()
	h := http.Header{HeaderAuth: {mustGenerate(b)}}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if d := Authorize(&Policy{Index: ix, Scopes: rules}, h[canonicalAuth], "/api/v1/sms/send", ClientSource{}, now); d.Verdict != KeyInvalid {
			b.Fatal("admitted an unknown key")
		}
	}
}

// BenchmarkCheckGRPC is one ext_authz Check through a real gRPC server and
// client on loopback (both in this process; for profiles, and beside
// BenchmarkForwardAuthHTTP).
func BenchmarkCheckGRPC(b *testing.B) {
	f := newFixture(b)
	gs, _ := NewGRPCServer(f.fwd)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = gs.Serve(l) }()
	b.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	client := authv3.NewAuthorizationClient(conn)
	req := checkRequest(map[string]string{"x-octopods-auth": f.current, ":authority": "api.example", "user-agent": "bench", ":path": "/v1/messages", ":method": "GET"})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := client.Check(context.Background(), req)
			if err != nil || res.GetOkResponse() == nil {
				b.Fatal(err, res)
			}
		}
	})
}

// BenchmarkForwardAuthHTTP is one forward-auth decision over loopback HTTP.
func BenchmarkForwardAuthHTTP(b *testing.B) {
	f := newFixture(b)
	srv := httptest.NewServer(f.fwd)
	b.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/messages", nil)
		req.Header.Set(HeaderAuth, f.current)
		for pb.Next() {
			res, err := client.Do(req)
			if err != nil || res.StatusCode != http.StatusOK {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
		}
	})
}

// BenchmarkIndexMemory is the live heap of the proxy's index at 100k (the
// baseline) and 1M keys, each with a previous key in its grace period and
// a revoked one: what the proxy holds beyond its fixed ~20 MiB, measured
// rather than extrapolated. Its time is how long loading them takes here.
func BenchmarkIndexMemory(b *testing.B) {
	perKey := map[int]float64{}
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			for b.Loop() {
				before := liveHeap()
				ix := keyindex.New()
				for i := range n {
					var cur, prev, revoked apikey.Digest
					binary.LittleEndian.PutUint64(cur[:], uint64(3*i))
					binary.LittleEndian.PutUint64(prev[:], uint64(3*i+1))
					binary.LittleEndian.PutUint64(revoked[:], uint64(3*i+2))
					ix.Set(keyindex.Keys{Namespace: "bench", Name: fmt.Sprintf("ws-%07d", i), Workspace: fmt.Sprintf("ws-%07d", i),
						Current: cur, HasCurrent: true, Previous: prev, HasPrevious: true, PreviousValidUntil: time.Now().Add(time.Hour),
						Revoked: []apikey.Digest{revoked}})
				}
				perKey[n] = float64(liveHeap()-before) / float64(n)
				runtime.KeepAlive(ix)
			}
			b.ReportMetric(perKey[n], "B/key")
			b.ReportMetric(perKey[n]*float64(n)/(1<<20), "MiB")
			b.ReportMetric(perKey[n]/perKey[100_000], "ratio-per-key-to-100k")
		})
	}
}

func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkAuthorizeLimits prints, beside the admitted decision without
// limits at 100k active objects (the baseline, measured first in the same
// run), the added cost of a rate-limited admission (every object limited,
// its bucket made) and the cost of a throttled refusal, each with its
// ratio to the baseline.
func BenchmarkAuthorizeLimits(b *testing.B) {
	const n = 100_000
	ix, keys, paths := loadedIndex(b, n)
	rules := scope.Default()
	now := time.Now()
	var baseline float64
	perOp := func(b *testing.B) float64 { return float64(b.Elapsed().Nanoseconds()) / float64(b.N) }
	admit := func(b *testing.B, p *Policy, from ClientSource) {
		headers, path := make([][]string, 1024), make([]string, 1024)
		for i := range headers {
			headers[i], path[i] = []string{keys[(i*7919)%n]}, paths[(i*7919)%n]
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if d := Authorize(p, headers[i&1023], path[i&1023], from, now); d.Verdict != Admitted {
				b.Fatalf("refused: %v", d.Verdict)
			}
			i++
		}
	}
	b.Run("unlimited", func(b *testing.B) {
		admit(b, &Policy{Index: ix, Scopes: rules}, ClientSource{})
		baseline = perOp(b)
	})
	b.Run("rate-limited", func(b *testing.B) {
		limited, _, _ := loadedIndex(b, 0)
		for i, k := range keys {
			limited.Set(keyindex.Keys{Namespace: "bench", Name: fmt.Sprintf("ws-%d", i), Workspace: fmt.Sprintf("ws-%d", i), Current: apikey.DigestOf(k), HasCurrent: true,
				Scope: scopeOfBench(i), RateLimit: keyindex.RateLimit{PerSecond: 1e6, Burst: 1e6}})
		}
		admit(b, &Policy{Index: limited, Scopes: rules}, ClientSource{})
		b.ReportMetric(perOp(b)-baseline, "added-ns/op")
		b.ReportMetric(perOp(b)/baseline, "ratio-to-unlimited")
	})
	b.Run("throttled-refusal", func(b *testing.B) {
		th := throttle.New(throttle.Config{Failures: 1, Window: time.Hour})
		th.Failed(netip.MustParseAddr("203.0.113.66"), now)
		p := &Policy{Index: ix, Scopes: rules, Throttle: th}
		key := []string{keys[0]}
		from := ClientSource{Peer: "203.0.113.66:5000"}
		b.ReportAllocs()
		for b.Loop() {
			if d := Authorize(p, key, "/api/v1/vbm/send", from, now); d.Verdict != Throttled {
				b.Fatalf("verdict %v", d.Verdict)
			}
		}
		b.ReportMetric(perOp(b)/baseline, "ratio-to-unlimited")
	})
	b.Run("admitted-while-another-source-is-throttled", func(b *testing.B) {
		th := throttle.New(throttle.Config{Failures: 1, Window: time.Hour})
		th.Failed(netip.MustParseAddr("203.0.113.66"), now)
		admit(b, &Policy{Index: ix, Scopes: rules, Throttle: th}, ClientSource{Peer: "198.51.100.7:5000"})
		b.ReportMetric(perOp(b)-baseline, "added-ns/op")
		b.ReportMetric(perOp(b)/baseline, "ratio-to-unlimited")
	})
}

// scopeOfBench is loadedIndex's scope for key i.
func scopeOfBench(i int) keyindex.Scope {
	switch i % 3 {
	case 0:
		return keyindex.Scope{Type: scope.TypeWorkspace}
	case 1:
		return keyindex.Scope{Type: scope.TypeChannel, ChannelType: "SMS"}
	}
	return keyindex.Scope{Type: scope.TypeWhatsApp}
}
