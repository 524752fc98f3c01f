// Command grpcbench compares the auth proxy's two gateway-facing interfaces
// in one run: Envoy's gRPC ext_authz Check over N concurrent streams on one
// HTTP/2 connection, and HTTP forward-auth over N keep-alive connections. The
// server runs in a child process, so its CPU time per decision is measured
// alone (from /proc), at 10 and 100,000 keys.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/octopods/octopods-operator/hack/benchenv"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/authproxy"
	"github.com/octopods/octopods-operator/internal/keyindex"
)

func main() {
	serveKeys := flag.Int("serve", 0, "Internal: run the server with this many keys, writing them to -keys-file.")
	keysFile := flag.String("keys-file", "", "Internal: where the server writes its keys.")
	duration := flag.Duration("duration", 4*time.Second, "Measured time per round.")
	rounds := flag.Int("rounds", 3, "Rounds per interface, alternating.")
	concurrency := flag.Int("concurrency", 32, "Concurrent streams (gRPC) or connections (HTTP).")
	flag.Parse()
	if *serveKeys > 0 {
		serve(*serveKeys, *keysFile)
		return
	}
	fmt.Printf("grpcbench: %d concurrent streams/connections, %d rounds of %s per interface; server in its own process\n", *concurrency, *rounds, *duration)
	fmt.Printf("%-8s %-22s %10s %9s %9s %16s\n", "keys", "interface", "checks/s", "p50", "p99", "server CPU/check")
	for _, n := range []int{10, 100_000} {
		bench(n, *concurrency, *rounds, *duration)
	}
}

type result struct {
	rps      float64
	p50, p99 time.Duration
	cpuPer   time.Duration
}

func bench(nKeys, concurrency, rounds int, d time.Duration) {
	f, err := os.CreateTemp("", "grpcbench-keys")
	check(err)
	defer func() { _ = os.Remove(f.Name()) }()
	child := exec.Command(os.Args[0], "-serve", fmt.Sprint(nKeys), "-keys-file", f.Name())
	out, err := child.StdoutPipe()
	check(err)
	child.Stderr = os.Stderr
	check(child.Start())
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	var httpAddr, grpcAddr string
	_, err = fmt.Fscanf(bufio.NewReader(out), "ready %s %s\n", &httpAddr, &grpcAddr)
	check(err)
	data, err := os.ReadFile(f.Name())
	check(err)
	keys := strings.Fields(string(data))

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	check(err)
	defer func() { _ = conn.Close() }()
	client := authv3.NewAuthorizationClient(conn)
	httpClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency, MaxIdleConns: concurrency}}

	viaGRPC := func(key string) {
		res, err := client.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/v1/messages",
				Headers: map[string]string{"x-octopods-auth": key, ":authority": "api.example", "user-agent": "bench"}}}}})
		check(err)
		if res.GetStatus().GetCode() != int32(codes.OK) {
			panic("gRPC refused a loaded key")
		}
	}
	viaHTTP := func(key string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+httpAddr+"/v1/messages", nil)
		req.Header.Set(authproxy.HeaderAuth, key)
		res, err := httpClient.Do(req)
		check(err)
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK {
			panic("HTTP refused a loaded key")
		}
	}
	var g, h []result
	for range rounds {
		h = append(h, drive(child.Process.Pid, viaHTTP, keys, concurrency, d))
		g = append(g, drive(child.Process.Pid, viaGRPC, keys, concurrency, d))
	}
	rh, rg := median(h), median(g)
	for _, row := range []struct {
		name string
		r    result
	}{{"HTTP forward-auth", rh}, {"gRPC ext_authz Check", rg}} {
		fmt.Printf("%-8d %-22s %10.0f %9s %9s %14.1fµs\n", nKeys, row.name, row.r.rps, row.r.p50, row.r.p99, float64(row.r.cpuPer.Nanoseconds())/1000)
	}
	fmt.Printf("%-8d gRPC/HTTP: throughput %.2f×, server CPU per check %.2f×\n", nKeys, rg.rps/rh.rps, float64(rg.cpuPer)/float64(rh.cpuPer))
}

func drive(pid int, call func(string), keys []string, concurrency int, d time.Duration) result {
	warm := time.Now().Add(300 * time.Millisecond)
	end := warm.Add(d)
	lat := make([][]time.Duration, concurrency)
	var cpuStart time.Duration
	var once sync.Once
	var wg sync.WaitGroup
	for w := range concurrency {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				start := time.Now()
				if start.After(end) {
					return
				}
				if start.After(warm) {
					once.Do(func() { cpuStart = benchenv.ProcCPU(pid) })
				}
				call(keys[rng.IntN(len(keys))])
				if start.After(warm) {
					lat[w] = append(lat[w], time.Since(start))
				}
			}
		})
	}
	wg.Wait()
	cpu := benchenv.ProcCPU(pid) - cpuStart
	all := slices.Concat(lat...)
	slices.Sort(all)
	return result{rps: float64(len(all)) / d.Seconds(), p50: all[len(all)/2].Round(time.Microsecond),
		p99: all[len(all)*99/100].Round(time.Microsecond), cpuPer: cpu / time.Duration(len(all))}
}

func median(rs []result) result {
	slices.SortFunc(rs, func(x, y result) int { return int(x.cpuPer - y.cpuPer) })
	return rs[len(rs)/2]
}

// serve is the child: an index of n keys, forward-auth over HTTP and
// ext_authz over gRPC, both as the real proxy builds them.
func serve(n int, keysFile string) {
	ix := keyindex.New()
	var keys strings.Builder
	for i := range n {
		k, err := apikey.Generate()
		check(err)
		keys.WriteString(k + "\n")
		ix.Set(keyindex.Keys{Namespace: "bench", Name: fmt.Sprintf("ws-%d", i), Workspace: fmt.Sprintf("ws-%d", i), Current: apikey.DigestOf(k), HasCurrent: true})
	}
	check(os.WriteFile(keysFile, []byte(keys.String()), 0o600))
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := authproxy.NewHandler(ix, func() bool { return true }, authproxy.NewMetrics(ix, func() time.Duration { return 0 }, true), quiet, nil, nil)
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	go func() { _ = authproxy.NewHTTPServer(h, quiet).Serve(hl) }()
	gs, _ := authproxy.NewGRPCServer(h)
	go func() { _ = gs.Serve(gl) }()
	fmt.Printf("ready %s %s\n", hl.Addr(), gl.Addr())
	select {}
}

func check(err error) {
	if err != nil {
		panic(err)
	}
}
