package authproxy

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"

	"github.com/octopods/octopods-operator/internal/apikey"
)

func checkRequest(headers map[string]string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "192.0.2.9"}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "POST", Path: "/v1/messages", Headers: headers}},
	}}
}

func newExtAuthz(f *fixture, logs io.Writer) *ExtAuthz {
	s := f.fwd.ExtAuthz()
	s.refusals = newRefusalLog(slog.New(slog.NewJSONHandler(logs, nil)), s.Index, nil)
	return s
}

func TestCheckRefusals(t *testing.T) {
	f := newFixture(t)
	logs := &strings.Builder{}
	s := newExtAuthz(f, logs)
	cases := []struct {
		name    string
		headers map[string]string
		reason  string
	}{
		{"missing", map[string]string{"accept": "*/*"}, OutcomeMissingKey},
		{"empty", map[string]string{"x-octopods-auth": ""}, OutcomeMissingKey},
		{"repeated (joined by Envoy with a comma)", map[string]string{"x-octopods-auth": f.current + "," + f.current}, OutcomeInvalidKey},
		{"bearer scheme", map[string]string{"x-octopods-auth": "Bearer " + f.current}, OutcomeInvalidKey},
		{"in authorization instead", map[string]string{"authorization": "Bearer " + f.current}, OutcomeMissingKey},
		{"malformed", map[string]string{"x-octopods-auth": "opk_nope"}, OutcomeInvalidKey},
		{"bad checksum", map[string]string{"x-octopods-auth": f.current[:52] + flipDigit(f.current[52])}, OutcomeInvalidKey},
		{"unknown", map[string]string{"x-octopods-auth": mustGenerate(t)}, OutcomeInvalidKey},
		{"previous after its grace", map[string]string{"x-octopods-auth": f.expired}, OutcomeInvalidKey},
		{"revoked: DEPRECATED_API_KEY", map[string]string{"x-octopods-auth": f.revoked, "user-agent": "leaky-cron/1.0"}, OutcomeDeprecatedKey},
		// Envoy sends HTTP/2 (lower-case) names; another spelling is not the header.
		{"name not lower-case", map[string]string{"X-Octopods-Auth": f.current}, OutcomeMissingKey},
		{"underscore name", map[string]string{"x_octopods_auth": f.current}, OutcomeMissingKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := s.Check(context.Background(), checkRequest(tc.headers))
			if err != nil {
				t.Fatal(err)
			}
			status := http.StatusUnauthorized
			if tc.reason == OutcomeDeprecatedKey {
				status = http.StatusBadRequest // Octopods' own answer to a rotated or revoked key
			}
			assertDenied(t, res, status, codes.Unauthenticated, tc.reason)
		})
	}
	if strings.Contains(logs.String(), f.current[4:]) || !strings.Contains(logs.String(), `"interface":"grpc"`) || !strings.Contains(logs.String(), `"client_address":"192.0.2.9"`) ||
		!strings.Contains(logs.String(), `"reason":"revoked_key"`) || !strings.Contains(logs.String(), `"user_agent":"leaky-cron/1.0"`) {
		t.Fatalf("refusal log: %s", logs.String())
	}
}

func assertDenied(t *testing.T, res *authv3.CheckResponse, status int, code codes.Code, reason string) {
	t.Helper()
	d := res.GetDeniedResponse()
	if res.GetStatus().GetCode() != int32(code) || d == nil || int(d.GetStatus().GetCode()) != status {
		t.Fatalf("got %v", res)
	}
	var body map[string]string
	if err := json.Unmarshal([]byte(d.GetBody()), &body); err != nil || body["error"] != reason {
		t.Fatalf("body %q", d.GetBody())
	}
	h := map[string]string{}
	for _, o := range d.GetHeaders() {
		h[o.GetHeader().GetKey()] = o.GetHeader().GetValue()
	}
	if h["content-type"] != "application/json" || h[HeaderAuthError] != reason || (status == http.StatusUnauthorized && h["www-authenticate"] == "") {
		t.Fatalf("headers %v", h)
	}
	if res.GetOkResponse() != nil || res.GetDynamicMetadata() != nil {
		t.Fatal("a refusal carries an identity")
	}
}

func TestCheckNotReady(t *testing.T) {
	f := newFixture(t)
	f.ready = false
	res, _ := newExtAuthz(f, io.Discard).Check(context.Background(), checkRequest(map[string]string{"x-octopods-auth": f.current}))
	assertDenied(t, res, http.StatusServiceUnavailable, codes.Unavailable, OutcomeNotReady)
}

func TestCheckAllowed(t *testing.T) {
	f := newFixture(t)
	s := newExtAuthz(f, io.Discard)
	for _, tc := range []struct{ name, key string }{{"current", f.current}, {"previous in grace", f.grace}} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := s.Check(context.Background(), checkRequest(map[string]string{
				"x-octopods-auth":      tc.key,
				"x-octopods-workspace": "forged",
				"x_octopods_workspace": "victim",
				"x-octopods-role":      "admin",
				"X-Octopods-Auth":      "opk_second",
				"accept":               "*/*",
			}))
			if err != nil {
				t.Fatal(err)
			}
			ok := res.GetOkResponse()
			if res.GetStatus().GetCode() != int32(codes.OK) || ok == nil {
				t.Fatalf("got %v", res)
			}
			want := map[string]string{HeaderWorkspace: "acme", HeaderWorkspaceNamespace: "team-a", HeaderKeyID: apikey.ID(tc.key), HeaderKeyType: "workspace"}
			if len(ok.GetHeaders()) != len(want) {
				t.Fatalf("headers %v", ok.GetHeaders())
			}
			for _, o := range ok.GetHeaders() {
				if want[o.GetHeader().GetKey()] != o.GetHeader().GetValue() || o.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
					t.Fatalf("header %v", o)
				}
			}
			remove := ok.GetHeadersToRemove()
			slices.Sort(remove)
			if !slices.Equal(remove, []string{"X-Octopods-Auth", "x-octopods-auth", "x-octopods-role", "x_octopods_workspace"}) {
				t.Fatalf("headers_to_remove %v", remove)
			}
			md := res.GetDynamicMetadata().GetFields()
			if md["workspace"].GetStringValue() != "acme" || md["namespace"].GetStringValue() != "team-a" || md["keyID"].GetStringValue() != apikey.ID(tc.key) {
				t.Fatalf("dynamic metadata %v", md)
			}
		})
	}
}

// With encode_raw_headers, Envoy sends each header on its own in header_map.
func TestCheckRawHeaderMap(t *testing.T) {
	f := newFixture(t)
	s := newExtAuthz(f, io.Discard)
	raw := func(values ...string) *authv3.CheckRequest {
		req := checkRequest(nil)
		hm := &corev3.HeaderMap{}
		for _, v := range values {
			hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: "x-octopods-auth", RawValue: []byte(v)})
		}
		req.Attributes.Request.Http.HeaderMap = hm
		return req
	}
	if res, _ := s.Check(context.Background(), raw(f.current)); res.GetOkResponse() == nil {
		t.Fatalf("one raw header refused: %v", res)
	}
	res, _ := s.Check(context.Background(), raw(f.current, f.current))
	assertDenied(t, res, http.StatusUnauthorized, codes.Unauthenticated, OutcomeInvalidKey)
}

// The decision of the gRPC interface allocates nothing, as the HTTP one.
func TestCheckDecisionDoesNotAllocate(t *testing.T) {
	f := newFixture(t)
	r := checkRequest(map[string]string{"x-octopods-auth": f.current}).GetAttributes().GetRequest().GetHttp()
	now := time.Now()
	if n := testing.AllocsPerRun(1000, func() {
		var buf [2]string
		Authorize(&Policy{Index: f.ix, Scopes: f.fwd.Scopes}, authValues(r, &buf), r.GetPath(), ClientSource{}, now)
	}); n != 0 {
		t.Fatalf("the gRPC decision allocates %v times", n)
	}
}
