package authproxy

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/keyindex"
)

// loadedIndex returns an index of n workspaces' keys and n of the keys.
func loadedIndex(b *testing.B, n int) (*keyindex.Index, []string) {
	ix := keyindex.New()
	keys := make([]string, n)
	for i := range keys {
		keys[i] = mustGenerate(b)
		ix.Set(keyindex.Keys{Namespace: "bench", Name: fmt.Sprintf("ws-%d-api-key", i), Workspace: fmt.Sprintf("ws-%d", i),
			Current: apikey.DigestOf(keys[i]), HasCurrent: true})
	}
	return ix, keys
}

// BenchmarkAuthorize is the whole decision for an admitted request: header
// lookup, format and checksum, hashing, index lookup, constant-time compare.
func BenchmarkAuthorize(b *testing.B) {
	for _, n := range []int{10, 10_000, 100_000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			ix, keys := loadedIndex(b, n)
			headers := make([]http.Header, 1024)
			for i := range headers {
				headers[i] = http.Header{HeaderAuth: {keys[(i*7919)%n]}}
			}
			now := time.Now()
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				if r, _, _ := Authorize(ix, headers[i&1023][canonicalAuth], now); r != keyindex.Allowed {
					b.Fatal("refused a loaded key")
				}
				i++
			}
		})
	}
}

// BenchmarkAuthorizeRefusal is the cost of refusing an unknown key.
func BenchmarkAuthorizeRefusal(b *testing.B) {
	ix, _ := loadedIndex(b, 100_000)
	h := http.Header{HeaderAuth: {mustGenerate(b)}}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if r, _, _ := Authorize(ix, h[canonicalAuth], now); r != keyindex.Invalid {
			b.Fatal("admitted an unknown key")
		}
	}
}
