package authproxy

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/keyindex"
	"github.com/octopods/octopods-operator/internal/scope"
)

// loadedIndex returns an index of n keys, a third of each type (workspace,
// SMS channel, WhatsApp), the keys, and for each a path its type takes.
func loadedIndex(b *testing.B, n int) (*keyindex.Index, []string, []string) {
	ix := keyindex.New()
	keys, paths := make([]string, n), make([]string, n)
	for i := range keys {
		keys[i] = mustGenerate(b)
		in := keyindex.Keys{Namespace: "bench", Name: fmt.Sprintf("ws-%d", i/3), Workspace: fmt.Sprintf("ws-%d", i/3),
			Current: apikey.DigestOf(keys[i]), HasCurrent: true}
		switch i % 3 {
		case 0:
			in.Scope, paths[i] = keyindex.Scope{Type: scope.TypeWorkspace}, "/api/v1/vbm/send"
		case 1:
			in.Scope, paths[i] = keyindex.Scope{Type: scope.TypeChannel, ChannelType: "SMS"}, "/api/v1/sms/send"
		default:
			in.Scope, paths[i] = keyindex.Scope{Type: scope.TypeWhatsApp}, "/api/v1/whatsapp/messages"
		}
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
				if d := Authorize(ix, rules, nil, headers[i&1023][canonicalAuth], path[i&1023], ClientSource{}, now); d.Verdict != Admitted {
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
		if d := Authorize(ix, rules, nil, h[canonicalAuth], "/api/v1/sms/send", ClientSource{}, now); d.Verdict != KeyInvalid {
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
