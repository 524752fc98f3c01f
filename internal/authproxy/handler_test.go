package authproxy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/keyindex"
)

// echoUpstream answers with the request headers it received, as JSON.
func echoUpstream(t testing.TB) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(r.Header)
	}))
	t.Cleanup(s.Close)
	return s
}

type fixture struct {
	ix             *keyindex.Index
	current, grace string
	expired, stale string
	revoked        string // one of globex's revoked keys
	reverse, fwd   *Handler
	logs           *strings.Builder
	ready          bool
}

func newFixture(t testing.TB) *fixture {
	f := &fixture{ix: keyindex.New(), logs: &strings.Builder{}, ready: true}
	f.current, f.grace, f.expired, f.stale, f.revoked = mustGenerate(t), mustGenerate(t), mustGenerate(t), mustGenerate(t), mustGenerate(t)
	now := time.Now()
	f.ix.Set(keyindex.Keys{Namespace: "team-a", Name: "acme-api-key", Workspace: "acme",
		Current: apikey.DigestOf(f.current), HasCurrent: true,
		Previous: apikey.DigestOf(f.grace), HasPrevious: true, PreviousValidUntil: now.Add(time.Hour)})
	f.ix.Set(keyindex.Keys{Namespace: "team-b", Name: "globex-api-key", Workspace: "globex",
		Current: apikey.DigestOf(mustGenerate(t)), HasCurrent: true,
		Previous: apikey.DigestOf(f.expired), HasPrevious: true, PreviousValidUntil: now.Add(-time.Second),
		Revoked: []apikey.Digest{apikey.DigestOf(f.revoked)}})
	log := slog.New(slog.NewJSONHandler(f.logs, nil))
	m := NewMetrics(f.ix, func() time.Duration { return 0 }, true)
	up, _ := url.Parse(echoUpstream(t).URL)
	ready := func() bool { return f.ready }
	f.reverse = NewHandler(f.ix, ready, m, log, up, UpstreamTransport())
	f.fwd = NewHandler(f.ix, ready, m, log, nil, nil)
	return f
}

func serve(h http.Handler, header http.Header) *http.Response {
	r := httptest.NewRequest(http.MethodGet, "/v1/channels?secret=no", nil)
	r.RemoteAddr = "192.0.2.7:4242"
	for k, vs := range header {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func TestRefusals(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name   string
		header http.Header
		reason string
	}{
		{"missing", http.Header{}, OutcomeMissingKey},
		{"empty", http.Header{"X-Octopods-Auth": {""}}, OutcomeMissingKey},
		{"repeated, both valid", http.Header{"X-Octopods-Auth": {f.current, f.current}}, OutcomeInvalidKey},
		{"comma-joined", http.Header{"X-Octopods-Auth": {f.current + ", " + f.current}}, OutcomeInvalidKey},
		{"bearer scheme", http.Header{"X-Octopods-Auth": {"Bearer " + f.current}}, OutcomeInvalidKey},
		{"in Authorization instead", http.Header{"Authorization": {"Bearer " + f.current}}, OutcomeMissingKey},
		{"malformed", http.Header{"X-Octopods-Auth": {"opk_nope"}}, OutcomeInvalidKey},
		{"bad checksum", http.Header{"X-Octopods-Auth": {f.current[:52] + flipDigit(f.current[52])}}, OutcomeInvalidKey},
		{"unknown", http.Header{"X-Octopods-Auth": {mustGenerate(t)}}, OutcomeInvalidKey},
		{"previous after its grace", http.Header{"X-Octopods-Auth": {f.expired}}, OutcomeInvalidKey},
		{"lower-case prefix", http.Header{"X-Octopods-Auth": {"OPK_" + f.current[4:]}}, OutcomeInvalidKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := serve(f.reverse, tc.header)
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != http.StatusUnauthorized || string(body) != fmt.Sprintf(`{"error":%q}`+"\n", tc.reason) {
				t.Fatalf("reverse mode: %d %q", res.StatusCode, body)
			}
			if res.Header.Get("Content-Type") != "application/json" || res.Header.Get("WWW-Authenticate") == "" {
				t.Fatalf("reverse mode headers: %v", res.Header)
			}
			if res.Header.Get("X-Octopods-Workspace") != "" {
				t.Fatal("identity header on a refusal")
			}
			res = serve(f.fwd, tc.header)
			body, _ = io.ReadAll(res.Body)
			if res.StatusCode != http.StatusUnauthorized || len(body) != 0 || res.Header.Get(HeaderAuthError) != tc.reason {
				t.Fatalf("forward-auth mode: %d %q %v", res.StatusCode, body, res.Header)
			}
		})
	}
	if strings.Contains(f.logs.String(), f.current[4:]) || strings.Contains(f.logs.String(), f.expired[4:]) {
		t.Fatal("a key reached the refusal log")
	}
}

func TestRefusalAuditLog(t *testing.T) {
	f := newFixture(t)
	serve(f.reverse, http.Header{"X-Octopods-Auth": {f.expired}})
	var line map[string]any
	if err := json.Unmarshal([]byte(f.logs.String()), &line); err != nil {
		t.Fatalf("log line %q: %v", f.logs.String(), err)
	}
	want := map[string]any{"msg": "request refused", "reason": "invalid_key", "key_id": apikey.ID(f.expired),
		"remote_addr": "192.0.2.7:4242", "method": "GET", "path": "/v1/channels"}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("log %s = %v, want %v", k, line[k], v)
		}
	}
}

func TestAdmittedReverseProxyHeaderHygiene(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name, key, keyID string
	}{{"current key", f.current, apikey.ID(f.current)}, {"previous key in grace", f.grace, apikey.ID(f.grace)}} {
		t.Run(tc.name, func(t *testing.T) {
			res := serve(f.reverse, http.Header{
				"x-octopods-auth":                {tc.key}, // header names are case-insensitive
				"X-Octopods-Workspace":           {"forged"},
				"X-Octopods-Workspace-Namespace": {"forged"},
				"X-Octopods-Workspace-Role":      {"admin"},
				"X-Octopods-Key-Id":              {"forged"},
				"X-Forwarded-For":                {"10.0.0.1"},
				"X-Forwarded-Host":               {"evil.example"},
				"Accept":                         {"application/json"},
			})
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			var got http.Header
			if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			want := map[string][]string{
				"X-Octopods-Workspace":           {"acme"},
				"X-Octopods-Workspace-Namespace": {"team-a"},
				"X-Octopods-Key-Id":              {tc.keyID},
				"X-Forwarded-For":                {"192.0.2.7"},
				"Accept":                         {"application/json"},
			}
			for k, v := range want {
				if fmt.Sprint(got[k]) != fmt.Sprint(v) {
					t.Errorf("upstream saw %s = %v, want %v", k, got[k], v)
				}
			}
			for _, gone := range []string{"X-Octopods-Auth", "X-Octopods-Workspace-Role"} {
				if _, ok := got[gone]; ok {
					t.Errorf("upstream saw %s", gone)
				}
			}
			if got.Get("X-Forwarded-Host") == "evil.example" {
				t.Error("client X-Forwarded-Host passed through")
			}
		})
	}
}

func TestAdmittedForwardAuth(t *testing.T) {
	f := newFixture(t)
	res := serve(f.fwd, http.Header{"X-Octopods-Auth": {f.current}, "X-Octopods-Workspace": {"forged"}})
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || len(body) != 0 {
		t.Fatalf("%d %q", res.StatusCode, body)
	}
	if res.Header.Get(HeaderWorkspace) != "acme" || res.Header.Get(HeaderWorkspaceNamespace) != "team-a" || res.Header.Get(HeaderKeyID) != apikey.ID(f.current) {
		t.Fatalf("identity headers: %v", res.Header)
	}
}

func TestNotReadyRefusesEverything(t *testing.T) {
	f := newFixture(t)
	f.ready = false
	for _, h := range []*Handler{f.reverse, f.fwd} {
		if res := serve(h, http.Header{"X-Octopods-Auth": {f.current}}); res.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("status %d before sync", res.StatusCode)
		}
	}
}

func TestAuthorizeDoesNotAllocate(t *testing.T) {
	f := newFixture(t)
	h := http.Header{"X-Octopods-Auth": {f.current}}
	now := time.Now()
	if n := testing.AllocsPerRun(1000, func() {
		Authorize(&Policy{Index: f.ix, Scopes: f.fwd.Scopes}, h[canonicalAuth], "/api/v1/sms/send", ClientSource{}, now)
	}); n != 0 {
		t.Fatalf("Authorize allocates %v times", n)
	}
}

// FuzzAuthorize: no header value is admitted unless it is exactly a loaded
// key, whatever is around it, and nothing panics.
func FuzzAuthorize(f *testing.F) {
	fx := newFixture(f)
	f.Add(fx.current, "")
	f.Add(" "+fx.current, "")
	f.Add("Bearer "+fx.current, "")
	f.Add(fx.current, fx.current)
	f.Add(fx.current+"\x00", "")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, first, second string) {
		h := http.Header{}
		h.Add(HeaderAuth, first)
		if second != "" {
			h.Add(HeaderAuth, second)
		}
		d := Authorize(&Policy{Index: fx.ix, Scopes: fx.fwd.Scopes}, h[canonicalAuth], "/", ClientSource{}, time.Now())
		if d.Verdict == Admitted {
			if second != "" || (first != fx.current && first != fx.grace) {
				t.Fatalf("admitted %q, %q as %+v", first, second, d.Who)
			}
		}
		if first == "" && second == "" && d.Verdict != KeyMissing {
			t.Fatalf("an empty header gave %v", d.Verdict)
		}
	})
}

func mustGenerate(t testing.TB) string {
	k, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func flipDigit(c byte) string {
	if c == '0' {
		return "1"
	}
	return "0"
}

// TestIdentityHeadersCannotBeSpoofed sends raw requests over a real
// connection, so every spelling reaches the proxy as a client would write
// it, and asserts what the upstream received.
func TestIdentityHeadersCannotBeSpoofed(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.reverse)
	t.Cleanup(srv.Close)
	cases := []struct {
		name  string
		extra []string // raw header lines
	}{
		{"underscore spelling", []string{"X_Octopods_Workspace: victim", "X_Octopods_Workspace_Namespace: victim-ns", "X_Octopods_Key_ID: forged", "X_Octopods_Auth: forged"}},
		{"lower-case underscore", []string{"x_octopods_workspace: victim"}},
		{"mixed case and separators", []string{"x-OCTOPODS_workspace: victim", "X_octopods-Key-Id: forged"}},
		{"unknown X-Octopods name", []string{"X-Octopods-Role: admin", "X_Octopods_Tenant: victim"}},
		{"another key type's identity", []string{"X-Octopods-Key-Type: whatsapp", "X-Octopods-Channel: sms-1", "X-Octopods-Channel-Type: SMS", "X_Octopods_WhatsApp_Business_Account: waba"}},
		{"repeated identity header", []string{"X-Octopods-Workspace: victim", "X-Octopods-Workspace: victim2"}},
		{"comma-joined identity header", []string{"X-Octopods-Workspace: acme, victim"}},
		{"Connection names the identity headers", []string{"Connection: X-Octopods-Workspace-Namespace, X-Octopods-Key-Id"}},
		{"Connection names every identity header", []string{"Connection: keep-alive, X-Octopods-Workspace, x-octopods-workspace-namespace, X-OCTOPODS-KEY-ID"}},
		{"Connection names X-Forwarded-For", []string{"Connection: X-Forwarded-For", "X-Forwarded-For: 10.9.9.9"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := rawRoundTrip(t, srv.Listener.Addr().String(), append([]string{"X-Octopods-Auth: " + f.current}, tc.extra...))
			want := map[string][]string{
				"X-Octopods-Workspace":           {"acme"},
				"X-Octopods-Workspace-Namespace": {"team-a"},
				"X-Octopods-Key-Id":              {apikey.ID(f.current)},
				"X-Octopods-Key-Type":            {"workspace"},
				"X-Forwarded-For":                {"127.0.0.1"},
			}
			for name, values := range got {
				if IsOctopodsHeader(name) {
					if w, ok := want[name]; !ok || fmt.Sprint(values) != fmt.Sprint(w) {
						t.Errorf("upstream saw %s = %v", name, values)
					}
				}
			}
			for name, values := range want {
				if fmt.Sprint(got[name]) != fmt.Sprint(values) {
					t.Errorf("upstream saw %s = %v, want %v", name, got[name], values)
				}
			}
		})
	}
}

// rawRoundTrip writes a GET with the given header lines and decodes the echo
// upstream's answer.
func rawRoundTrip(t *testing.T, addr string, lines []string) http.Header {
	t.Helper()
	res, err := sendRaw(t, addr, "GET /v1/messages HTTP/1.1\r\nHost: api.example\r\n"+strings.Join(lines, "\r\n")+"\r\nConnection: close\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(res.Body)
		t.Fatalf("status %d %s", res.StatusCode, body)
	}
	var got http.Header
	if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestForwardAuthRefusesUnderscoreIdentity(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.fwd)
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		header string
		status int
	}{
		{"X_Octopods_Workspace: victim", http.StatusUnauthorized},
		{"x_octopods-key-id: forged", http.StatusUnauthorized},
		{"X_Octopods_Auth: forged", http.StatusUnauthorized},
		// Spelled exactly: the gateway overwrites it with the proxy's answer.
		{"X-Octopods-Workspace: victim", http.StatusOK},
		{"X_Other: fine", http.StatusOK},
	} {
		t.Run(tc.header, func(t *testing.T) {
			res, err := sendRaw(t, srv.Listener.Addr().String(),
				fmt.Sprintf("GET / HTTP/1.1\r\nHost: a\r\nX-Octopods-Auth: %s\r\n%s\r\nConnection: close\r\n\r\n", f.current, tc.header))
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.status)
			}
			if tc.status == http.StatusUnauthorized && (res.Header.Get(HeaderAuthError) != OutcomeInvalidKey || res.Header.Get(HeaderWorkspace) != "") {
				t.Fatalf("refusal headers %v", res.Header)
			}
		})
	}
	if !strings.Contains(f.logs.String(), detailSpoofedHeader) {
		t.Fatalf("refusal log does not say why: %s", f.logs.String())
	}
}

func TestIsOctopodsHeader(t *testing.T) {
	for name, want := range map[string]bool{
		"X-Octopods-Workspace": true, "x_octopods_workspace": true, "X_OCTOPODS-KEY-ID": true,
		"X-Octopods-Auth": true, "X-Octopods-": true, "X-Octopods": false, "X-Octopodsx": false,
		"X-Octo": false, "Accept": false, "Xx-Octopods-Workspace": false, "": false,
	} {
		if got := IsOctopodsHeader(name); got != want {
			t.Errorf("IsOctopodsHeader(%q) = %v, want %v", name, got, want)
		}
	}
}

// A refused request is answered before its body arrives: a client that
// declares a body and trickles it (slowloris) gets its 401 at once.
func TestRefusalDoesNotWaitForTheBody(t *testing.T) {
	f := newFixture(t)
	for name, h := range map[string]*Handler{"reverse": f.reverse, "forward-auth": f.fwd} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			res, err := sendRaw(t, srv.Listener.Addr().String(),
				fmt.Sprintf("POST /v1/messages HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\nX-Octopods-Auth: %s\r\n\r\n{\"partial", mustGenerate(t)))
			if err != nil {
				t.Fatalf("no answer while the body trickles: %v", err)
			}
			if res.StatusCode != http.StatusUnauthorized || !res.Close {
				t.Fatalf("status %d, close %v", res.StatusCode, res.Close)
			}
		})
	}
}

func TestRefusalLogIsBoundedPerClient(t *testing.T) {
	f := newFixture(t)
	before := f.logs.Len()
	for i := range 100 {
		r := httptest.NewRequest(http.MethodGet, "/v1/"+strings.Repeat("a", 1000), nil)
		r.RemoteAddr = "192.0.2.50:" + fmt.Sprint(1000+i)
		r.Header.Set(HeaderAuth, mustGenerate(t))
		f.reverse.ServeHTTP(httptest.NewRecorder(), r)
	}
	serve(f.reverse, http.Header{}) // another client still gets its line
	lines := strings.Split(strings.TrimSpace(f.logs.String()[before:]), "\n")
	if len(lines) != refusalLogBurst+1 {
		t.Fatalf("%d log lines for 100 refusals from one client and 1 from another; want %d", len(lines), refusalLogBurst+1)
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if p, _ := first["path"].(string); len(p) > maxLoggedPath+len("…") {
		t.Fatalf("path of %d bytes logged", len(p))
	}
	f.reverse.refusals.flush()
	summary := f.logs.String()[before:]
	if !strings.Contains(summary, `"client_address":"192.0.2.50","count":95`) {
		t.Fatalf("no summary line with the count: %s", summary)
	}
}

func TestClientAddressBehindTrustedProxies(t *testing.T) {
	trusted, err := ParseCIDRs([]string{"10.0.0.0/8, 2001:db8::/32"})
	if err != nil {
		t.Fatal(err)
	}
	l := newRefusalLog(slog.New(slog.NewTextHandler(io.Discard, nil)), nil, trusted)
	for _, tc := range []struct{ peer, xff, want string }{
		{"192.0.2.7:1", "198.51.100.1", "192.0.2.7"},                          // untrusted peer: its XFF is the client's say-so
		{"10.1.2.3:1", "198.51.100.1", "198.51.100.1"},                        // through the load balancer
		{"10.1.2.3:1", "203.0.113.9, 198.51.100.1, 10.9.9.9", "198.51.100.1"}, // right-most untrusted hop, not the spoofable left
		{"10.1.2.3:1", "", "10.1.2.3"},
		{"10.1.2.3:1", "not-an-ip", "10.1.2.3"},
		{"[2001:db8::1]:1", "198.51.100.2", "198.51.100.2"},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tc.peer
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := l.clientAddress(r); got != tc.want {
			t.Errorf("peer %s XFF %q: client %s, want %s", tc.peer, tc.xff, got, tc.want)
		}
	}
	if _, err := ParseCIDRs([]string{"10.0.0.0/33"}); err == nil || !strings.Contains(err.Error(), "--trusted-proxy-cidrs") {
		t.Fatalf("bad CIDR: %v", err)
	}
}

func TestUpgrades(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.reverse)
	t.Cleanup(srv.Close)
	// h2c, and any other protocol but WebSocket: the upgrade is dropped,
	// the request forwarded as HTTP/1.1.
	for _, upgrade := range []string{"h2c", "H2C", "TLS/1.2", "SPDY/3.1", "IRC/6.9"} {
		got := rawRoundTrip(t, srv.Listener.Addr().String(), []string{"X-Octopods-Auth: " + f.current,
			"Connection: Upgrade, HTTP2-Settings", "Upgrade: " + upgrade, "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"})
		for _, h := range []string{"Upgrade", "Http2-Settings"} {
			if _, ok := got[h]; ok {
				t.Errorf("Upgrade: %s: upstream saw %s", upgrade, h)
			}
		}
	}
	// X-Real-Ip is the proxy's: the client's own value never reaches the upstream.
	got := rawRoundTrip(t, srv.Listener.Addr().String(), []string{"X-Octopods-Auth: " + f.current, "X-Real-Ip: 203.0.113.66"})
	if v := got["X-Real-Ip"]; len(v) != 1 || v[0] != "127.0.0.1" {
		t.Errorf("upstream saw X-Real-Ip %v, want [127.0.0.1]", v)
	}
	// WebSocket without a valid key: refused, never switched.
	res := serve(f.reverse, http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}})
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("websocket without a key: %d", res.StatusCode)
	}
}

// sendRaw writes a request exactly as given on a new connection and reads
// the answer, waiting at most 3s for it.
func sendRaw(t *testing.T, addr, request string) (*http.Response, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		t.Cleanup(func() { _ = res.Body.Close() })
	}
	return res, err
}

// A bad listen address names its flag and says what to give instead.
func TestNewNamesTheFlagOfABadAddress(t *testing.T) {
	_, err := New(Config{ListenAddress: "127.0.0.1:0", HealthProbeAddress: "127.0.0.1:0", MetricsAddress: "127.0.0.1:0", GRPCAddress: "not-an-address"},
		&rest.Config{Host: "https://127.0.0.1:1"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.HasPrefix(err.Error(), `--grpc-bind-address "not-an-address": cannot listen there`) || !strings.Contains(err.Error(), "give a free host:port") {
		t.Fatalf("error %v", err)
	}
}

// A revoked key the operator remembers gets Octopods' own answer,
// DEPRECATED_API_KEY: 400 in reverse-proxy mode; in forward-auth mode 401
// with the code in X-Octopods-Auth-Error (nginx's auth_request turns any
// other status into a 500). Its use is reported.
func TestRevokedKeyIsDeprecatedAndReported(t *testing.T) {
	f := newFixture(t)
	for _, h := range []*Handler{f.reverse, f.fwd} {
		res := serve(h, http.Header{HeaderAuth: {f.revoked}, "User-Agent": {"leaky-cron/1.0"}, "X-Original-Uri": {"/v1/messages?channel=sms"}})
		body, _ := io.ReadAll(res.Body)
		if h == f.fwd && (res.StatusCode != http.StatusUnauthorized || res.Header.Get(HeaderAuthError) != OutcomeDeprecatedKey || len(body) != 0) {
			t.Fatalf("forward-auth: %d %q %q, want 401 DEPRECATED_API_KEY and no body", res.StatusCode, res.Header.Get(HeaderAuthError), body)
		}
		if h == f.reverse && (res.StatusCode != http.StatusBadRequest || string(body) != `{"error":"DEPRECATED_API_KEY"}`+"\n") {
			t.Fatalf("reverse proxy: %d %q, want 400 DEPRECATED_API_KEY", res.StatusCode, body)
		}
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(f.logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, m)
	}
	want := map[string]any{"reason": ReasonRevokedKey, "key_id": apikey.ID(f.revoked), "namespace": "team-b", "workspace": "globex",
		"client_address": "192.0.2.7", "user_agent": "leaky-cron/1.0"}
	for i, l := range lines {
		for k, v := range want {
			if l[k] != v {
				t.Errorf("line %d: %s = %v, want %v (%v)", i, k, l[k], v, l)
			}
		}
	}
	if len(lines) != 2 || lines[1]["original_uri"] != "/v1/messages?channel=sms" || lines[0]["original_uri"] != nil {
		t.Errorf("original_uri is the gateway's, in forward-auth mode only: %v", lines)
	}
	p := f.ix.Pending()
	if len(p) != 1 || p[0].RevokedUse == nil || p[0].RevokedUse.ClientAddress != "192.0.2.7" || p[0].RevokedUse.KeyID != apikey.ID(f.revoked) {
		t.Fatalf("pending sighting %+v", p)
	}
	if n := f.ix.RevokedPresented(); len(n) != 1 || n[0].Count != 2 {
		t.Fatalf("counted %+v, want 2 for globex", n)
	}
	if strings.Contains(f.logs.String(), f.revoked[4:]) {
		t.Fatal("the revoked key itself was logged")
	}
}
