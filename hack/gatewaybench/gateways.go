package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/octopods/octopods-operator/hack/benchenv"
	"github.com/octopods/octopods-operator/internal/authproxy"
)

// nginxConfig: one worker; an upstream API answering {"ok":true}; nginx's
// own map of the keys behind an auth endpoint; and two gateways that differ
// only in whom auth_request asks. Both auth endpoints are reached the same
// way (keep-alive proxy_pass over loopback), so the difference is the
// endpoint alone.
const nginxConfig = `
worker_processes 1;
# Run as root, the workers must read the scratch directory (0700); run as
# anyone else, nginx ignores this line.
user root root;
pid {{dir}}/nginx.pid;
error_log {{dir}}/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path {{dir}}/client-body;
  proxy_temp_path {{dir}}/proxy-temp;
  map_hash_max_size 4194304;
  map_hash_bucket_size 256; # 128 makes nginx search minutes for a hash size
  map $http_x_octopods_auth $octopods_key_ok { default 0; include {{dir}}/keys.map; }
  upstream octopods_map { server {{map}}; keepalive 64; }
  upstream octopods_proxy { server {{proxy}}; keepalive 64; }
  # 401 with an empty body, as the auth proxy answers: nginx's own error
  # page would make nginx drop the keep-alive connection to it.
  server { listen {{map}}; error_page 401 /_empty;
    location = /_empty { internal; root {{dir}}; try_files /empty =404; }
    location / { if ($octopods_key_ok = 0) { return 401; } return 200; } }
  server { listen {{api}}; location / { default_type application/json; return 200 '{"ok":true}'; } }
  server { listen {{front-map}};
    location / { auth_request /_auth; default_type application/json; root {{dir}}; try_files /ok.json =404; }
    location = /_auth { internal; proxy_pass http://octopods_map; include {{dir}}/auth-request.conf; } }
  server { listen {{front-proxy}};
    location / { auth_request /_auth; default_type application/json; root {{dir}}; try_files /ok.json =404; }
    location = /_auth { internal; proxy_pass http://octopods_proxy; include {{dir}}/auth-request.conf; } }
}
`

// authRequestConfig is the subrequest as the README's nginx example sends it.
const authRequestConfig = `
proxy_pass_request_body off;
proxy_set_header Content-Length "";
proxy_set_header X-Original-URI $request_uri;
proxy_http_version 1.1;
proxy_set_header Connection "";
`

// nginx starts nginx with the given listen addresses; it returns the
// master's pid and a stop function.
func nginx(dir string, addrs map[string]string) (int, func()) {
	conf := strings.ReplaceAll(nginxConfig, "{{dir}}", dir)
	for name, addr := range addrs {
		conf = strings.ReplaceAll(conf, "{{"+name+"}}", addr)
	}
	benchenv.Check(os.WriteFile(dir+"/nginx.conf", []byte(conf), 0o600))
	benchenv.Check(os.WriteFile(dir+"/auth-request.conf", []byte(authRequestConfig), 0o600))
	benchenv.Check(os.WriteFile(dir+"/ok.json", []byte(`{"ok":true}`), 0o600))
	benchenv.Check(os.WriteFile(dir+"/empty", nil, 0o600))
	cmd := exec.Command("nginx", "-p", dir, "-c", dir+"/nginx.conf", "-g", "daemon off;")
	stop := start(dir, "nginx", cmd)
	benchenv.WaitReady("http://"+addrs["api"]+"/", readyTimeout)
	return cmd.Process.Pid, stop
}

// readyTimeout bounds nginx's start (building its map of the keys) and the
// proxy's first sync.
const readyTimeout = 5 * time.Minute

// proxy starts the auth-proxy binary with the Deployment's GOMEMLIMIT and
// its log in dir; it returns the pid once /readyz answers (every key loaded).
func proxy(env *benchenv.Env, bin, name, listen string, extra ...string) (int, func()) {
	probes := benchenv.FreePort()
	cmd := exec.Command(bin, append([]string{"--kubeconfig", env.Kubeconfig, "--listen-address", listen,
		"--health-probe-bind-address", probes, "--metrics-bind-address", benchenv.FreePort()}, extra...)...)
	cmd.Env = append(os.Environ(), "GOMEMLIMIT="+benchenv.ProxyGoMemLimit)
	stop := start(env.Dir, name, cmd)
	benchenv.WaitReady("http://"+probes+"/readyz", readyTimeout)
	return cmd.Process.Pid, stop
}

// forwardAuth compares nginx's own map with our forward-auth endpoint, for
// admitted and for refused requests. The CPU counted is nginx's worker and,
// on our side, the auth proxy too: all that answering a request costs.
func forwardAuth(env *benchenv.Env, bin string, w *workload, rounds int) {
	addrs := map[string]string{"map": benchenv.FreePort(), "api": benchenv.FreePort(), "proxy": benchenv.FreePort(),
		"front-map": benchenv.FreePort(), "front-proxy": benchenv.FreePort()}
	ours, stopProxy := proxy(env, bin, "forward-auth", addrs["proxy"])
	defer stopProxy()
	master, stopNginx := nginx(env.Dir, addrs)
	defer stopNginx()
	workers := func() []int { return children(master) }
	both := func() []int { return append(children(master), ours) }
	// The two auth endpoints alone, without the gateway: what one answer
	// costs each, which bounds the ratio behind nginx.
	w.compare(comparison{title: "Auth endpoint alone, admitted, wrk straight to it (CPU: the endpoint's process):",
		goal: "6", figure: "auth endpoint alone, admitted", target: "(what bounds the ratio)"},
		side{name: "nginx map (C hash, empty 200/401)", url: "http://" + addrs["map"] + "/v1/messages", script: w.admitted, pids: workers},
		side{name: "octopods auth-proxy, forward-auth", url: "http://" + addrs["proxy"] + "/v1/messages", script: w.admitted, pids: func() []int { return []int{ours} }},
		rounds)
	for _, refused := range []bool{false, true} {
		what, script := "admitted", w.admitted
		if refused {
			what, script = "refused", w.refused
		}
		w.compare(comparison{title: "Forward auth behind nginx auth_request, " + what + " (CPU: nginx worker, + auth proxy on b):",
			goal: "6", figure: "forward auth behind nginx, " + what, target: "≥ 0.95 throughput"},
			side{name: "nginx map (C hash, empty 200/401)", url: "http://" + addrs["front-map"] + "/v1/messages", script: script, pids: workers, refused: refused},
			side{name: "octopods auth-proxy, forward-auth", url: "http://" + addrs["front-proxy"] + "/v1/messages", script: script, pids: both, refused: refused},
			rounds)
	}
}

// reverseProxy compares the auth proxy binary in reverse-proxy mode with a
// bare httputil.ReverseProxy, both in front of nginx's {"ok":true}. The CPU
// counted is the proxy process's alone.
func reverseProxy(env *benchenv.Env, bin string, w *workload, rounds int) {
	addrs := map[string]string{"map": benchenv.FreePort(), "api": benchenv.FreePort(), "proxy": benchenv.FreePort(),
		"front-map": benchenv.FreePort(), "front-proxy": benchenv.FreePort()}
	_, stopNginx := nginx(env.Dir, addrs)
	defer stopNginx()
	upstream := "http://" + addrs["api"]
	oursAddr, bareAddr := benchenv.FreePort(), benchenv.FreePort()
	ours, stopProxy := proxy(env, bin, "reverse-proxy", oursAddr, "--upstream", upstream)
	defer stopProxy()
	self, err := os.Executable()
	benchenv.Check(err)
	bare := exec.Command(self, bareProxyCommand, bareAddr, upstream)
	bare.Env = append(os.Environ(), "GOMEMLIMIT="+benchenv.ProxyGoMemLimit) // as ours
	stopBare := start(env.Dir, "bare-proxy", bare)
	defer stopBare()
	benchenv.WaitReady("http://"+bareAddr+"/", readyTimeout)
	w.compare(comparison{title: "Reverse proxy, admitted requests (CPU: the proxy process):",
		goal: "7", figure: "reverse proxy, admitted", target: "≥ 0.95 throughput, ≤ 1.05x CPU"},
		side{name: "bare httputil.ReverseProxy", url: "http://" + bareAddr + "/v1/messages", script: w.admitted, pids: func() []int { return []int{bare.Process.Pid} }},
		side{name: "octopods auth-proxy, --upstream", url: "http://" + oursAddr + "/v1/messages", script: w.admitted, pids: func() []int { return []int{ours} }},
		rounds)
}

// bareProxyCommand re-runs this command as the bare reverse proxy, so that
// its CPU is its own.
const bareProxyCommand = "bare-proxy"

// runBareProxy serves a bare httputil.ReverseProxy on listen, with the auth
// proxy's own transport and server settings.
func runBareProxy(listen, upstream string) {
	target, err := url.Parse(upstream)
	benchenv.Check(err)
	l, err := net.Listen("tcp", listen)
	benchenv.Check(err)
	srv := authproxy.NewHTTPServer(&httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
		Transport: authproxy.UpstreamTransport(),
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	fmt.Println(srv.Serve(l))
}
