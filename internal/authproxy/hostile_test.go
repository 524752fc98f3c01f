package authproxy

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcstatus "google.golang.org/grpc/status"
)

// hostileCheck is a Check whose source address is addrBytes long and whose
// other caller-controlled fields are fieldBytes long, each unique to i so
// that nothing is deduplicated.
func hostileCheck(i, addrBytes, fieldBytes int) *authv3.CheckRequest {
	sized := func(what string, n int) string {
		p := fmt.Sprintf("%s-%d-", what, i)
		return p + strings.Repeat("a", max(n-len(p), 0))
	}
	long := func(what string) string { return sized(what, fieldBytes) }
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: sized("addr", addrBytes)}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: long("M"), Path: "/" + long("p"),
			Headers: map[string]string{"user-agent": long("ua"), "x-octopods-auth": "opk_nope"}}},
	}}
}

// The second audit's attack: 100 refused Checks from unauthenticated
// callers, over a real gRPC connection, with megabyte fields. The heap must
// not keep them, and no log line may carry them.
func TestHostileGRPCCallersAreBounded(t *testing.T) {
	f := newFixture(t)
	gs, _ := NewGRPCServer(f.fwd)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(l) }()
	defer gs.Stop()

	heap := func() uint64 {
		// Twice: gRPC's buffer pools are sync.Pools, emptied over two GCs.
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	attack := func(addrBytes, fieldBytes int) (codes.Code, uint64) {
		before := heap()
		// Its own connection, closed before the heap is read: what the
		// client side held is not counted.
		conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		client := authv3.NewAuthorizationClient(conn)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var code codes.Code
		for i := range 100 {
			wg.Go(func() {
				// Generous: 100 calls of 3 MiB under -race, beside other
				// suites on two cores, took over 30 s in CI; the refusal
				// is what is checked, not its speed.
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				defer cancel()
				res, err := client.Check(ctx, hostileCheck(i, addrBytes, fieldBytes))
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					code = grpcstatus.Code(err)
				} else {
					code = codes.Code(res.GetStatus().GetCode())
				}
			})
		}
		wg.Wait()
		_ = conn.Close()
		// The attack's requests are garbage now; what stays is what the
		// proxy kept (the refusal budget's map lives for 10 s).
		after := heap()
		if after < before {
			return code, 0
		}
		return code, after - before
	}

	// The audit's 3 MiB source address: refused by the receive limit,
	// before any decoding.
	code, grown := attack(3<<20, 16)
	t.Logf("100 Checks with a 3 MiB source address: %v, heap kept %d KiB", code, grown>>10)
	if code != codes.ResourceExhausted {
		t.Errorf("a 3 MiB Check got %v, want ResourceExhausted (the receive limit)", code)
	}
	// Fields just under the limit reach the decision: each field is bounded
	// before it is logged or kept.
	quarter := (DefaultGRPCMaxReceiveMessageBytes - 4096) / 4
	code, grown2 := attack(quarter, quarter)
	t.Logf("100 Checks with %d KiB fields: %v, heap kept %d KiB", DefaultGRPCMaxReceiveMessageBytes/4>>10, code, grown2>>10)
	if code != codes.Unauthenticated {
		t.Errorf("got %v, want Unauthenticated", code)
	}
	const heapBound = 4 << 20
	if grown > heapBound || grown2 > heapBound {
		t.Errorf("heap kept %d and %d bytes after the attacks, want at most %d", grown, grown2, heapBound)
	}
	longest := 0
	for line := range strings.SplitSeq(f.logs.String(), "\n") {
		longest = max(longest, len(line))
	}
	t.Logf("longest log line: %d bytes", longest)
	if longest > 1024 {
		t.Errorf("longest log line %d bytes, want at most 1 KiB", longest)
	}
	if !strings.Contains(f.logs.String(), `"client_address":"invalid"`) {
		t.Errorf("an address that is not an IP must be logged as invalid: %.2000s", f.logs.String())
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"GET", 20, "GET"},
		{strings.Repeat("A", 30), 20, strings.Repeat("A", 20) + "…"},
		{"aé", 2, "a…"}, // never half a rune
	} {
		if got := truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// The refusal budget's map is bounded in bytes as well as in entries.
func TestRefusalBudgetBoundedInBytes(t *testing.T) {
	l := newRefusalLog(nil, nil, nil)
	now := time.Now()
	for i := range 100 {
		l.allow(fmt.Sprintf("%d-%s", i, strings.Repeat("x", 64<<10)), now)
	}
	if l.keyBytes > refusalLogKeyBytes {
		t.Fatalf("the budget map holds %d bytes of keys, bound %d", l.keyBytes, refusalLogKeyBytes)
	}
	if _, ok := l.clients[otherClients]; !ok {
		t.Fatalf("past the byte bound, clients must share one budget")
	}
}
