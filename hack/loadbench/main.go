// Command loadbench drives (a) a bare httputil.ReverseProxy and (b) the auth
// proxy's handler, both in front of the same upstream, with the same client,
// on loopback, and prints req/s, p50 and p99 of each and the ratio b/a.
package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/authproxy"
	"github.com/octopods/octopods-operator/internal/keyindex"
)

func main() {
	duration := flag.Duration("duration", 5*time.Second, "Measured time per round.")
	rounds := flag.Int("rounds", 3, "Rounds per target, alternating a and b.")
	concurrency := flag.Int("concurrency", 32, "Concurrent client connections.")
	nKeys := flag.Int("keys", 100_000, "Keys loaded into the auth proxy's index.")
	flag.Parse()

	upstream := serve(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	target, _ := url.Parse("http://" + upstream)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	bare := serve(&httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
		Transport: authproxy.UpstreamTransport(),
	})

	ix := keyindex.New()
	keys := make([]string, *nKeys)
	for i := range keys {
		k, err := apikey.Generate()
		if err != nil {
			panic(err)
		}
		keys[i] = k
		ix.Set(keyindex.Keys{Namespace: "bench", Name: fmt.Sprintf("ws-%d-api-key", i), Workspace: fmt.Sprintf("ws-%d", i),
			Current: apikey.DigestOf(k), HasCurrent: true})
	}
	metrics := authproxy.NewMetrics(ix, func() time.Duration { return 0 }, true)
	auth := serve(authproxy.NewHandler(ix, func() bool { return true }, metrics, quiet, target, authproxy.UpstreamTransport()))

	fmt.Printf("loadbench: %d keys, %d connections, %d rounds of %s per target, GOMAXPROCS=%s\n",
		*nKeys, *concurrency, *rounds, *duration, os.Getenv("GOMAXPROCS"))
	var a, b []result
	for range *rounds {
		a = append(a, drive("http://"+bare, keys, *concurrency, *duration))
		b = append(b, drive("http://"+auth, keys, *concurrency, *duration))
	}
	ra, rb := median(a), median(b)
	fmt.Printf("(a) bare reverse proxy: %8.0f req/s  p50 %7s  p99 %7s\n", ra.rps, ra.p50, ra.p99)
	fmt.Printf("(b) auth proxy:         %8.0f req/s  p50 %7s  p99 %7s\n", rb.rps, rb.p50, rb.p99)
	fmt.Printf("ratio b/a throughput: %.3f   p50 added: %s   p99 added: %s\n", rb.rps/ra.rps, rb.p50-ra.p50, rb.p99-ra.p99)
}

type result struct {
	rps      float64
	p50, p99 time.Duration
}

func median(rs []result) result {
	slices.SortFunc(rs, func(x, y result) int {
		switch {
		case x.rps < y.rps:
			return -1
		case x.rps > y.rps:
			return 1
		}
		return 0
	})
	return rs[len(rs)/2]
}

// drive runs a closed loop of concurrent clients; every request carries a
// valid key, so both targets do the same work but the check.
func drive(base string, keys []string, concurrency int, d time.Duration) result {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency, MaxIdleConns: concurrency}}
	warm := time.Now().Add(500 * time.Millisecond)
	end := warm.Add(d)
	lat := make([][]time.Duration, concurrency)
	var wg sync.WaitGroup
	for w := range concurrency {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			req, _ := http.NewRequest(http.MethodGet, base+"/v1/messages", nil)
			for {
				start := time.Now()
				if start.After(end) {
					return
				}
				req.Header.Set(authproxy.HeaderAuth, keys[rng.IntN(len(keys))])
				res, err := client.Do(req)
				if err != nil {
					panic(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
				if res.StatusCode != http.StatusOK {
					panic(fmt.Sprintf("%s answered %d", base, res.StatusCode))
				}
				if start.After(warm) {
					lat[w] = append(lat[w], time.Since(start))
				}
			}
		})
	}
	wg.Wait()
	client.CloseIdleConnections()
	all := slices.Concat(lat...)
	slices.Sort(all)
	return result{
		rps: float64(len(all)) / d.Seconds(),
		p50: all[len(all)/2].Round(time.Microsecond),
		p99: all[len(all)*99/100].Round(time.Microsecond),
	}
}

func serve(h http.Handler) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := authproxy.NewHTTPServer(h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	go func() { _ = srv.Serve(l) }()
	return l.Addr().String()
}
