package authproxy

import (
	"context"
	"net/http"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/octopods/octopods-operator/internal/keyindex"
)

// ExtAuthz serves Envoy's envoy.service.auth.v3.Authorization/Check (Istio
// CUSTOM, Envoy Gateway SecurityPolicy.extAuth.grpc, Gateway API
// ExternalAuth with protocol GRPC, Cilium) from the same index and the same
// Authorize as the HTTP interfaces.
type ExtAuthz struct {
	authv3.UnimplementedAuthorizationServer
	Policy
	Ready    func() bool
	Metrics  *Metrics
	refusals *refusalLog
	now      func() time.Time
}

// ExtAuthz returns the gRPC Check service deciding from the same index,
// readiness, metrics and refusal log as the HTTP handler.
func (h *Handler) ExtAuthz() *ExtAuthz {
	return &ExtAuthz{Policy: h.Policy, Ready: h.Ready, Metrics: h.Metrics, refusals: h.refusals, now: time.Now}
}

// headerAuth is X-Octopods-Auth as Envoy sends it: lower case.
const headerAuth = "x-octopods-auth"

// Refusals are fixed: built once, shared read-only by every response.
var (
	deniedMissingKey       = denied(http.StatusUnauthorized, codes.Unauthenticated, OutcomeMissingKey, bodyMissingKey)
	deniedInvalidKey       = denied(http.StatusUnauthorized, codes.Unauthenticated, OutcomeInvalidKey, bodyInvalidKey)
	deniedNotReady         = denied(http.StatusServiceUnavailable, codes.Unavailable, OutcomeNotReady, bodyNotReady)
	deniedDeprecated       = denied(http.StatusBadRequest, codes.Unauthenticated, OutcomeDeprecatedKey, bodyDeprecatedKey)
	deniedSourceNotAllowed = denied(http.StatusForbidden, codes.PermissionDenied, OutcomeSourceNotAllowed, bodySourceNotAllowed)
)

// Check decides one request that Envoy holds.
func (s *ExtAuthz) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	start := s.now()
	if !s.Ready() {
		s.Metrics.observe(s.Metrics.grpc.notReady, start, s.now())
		return deniedNotReady, nil
	}
	httpReq := req.GetAttributes().GetRequest().GetHttp()
	var buf [2]string
	path := httpReq.GetPath()
	if q := strings.IndexByte(path, '?'); q >= 0 {
		path = path[:q]
	}
	// Envoy's source.address names the client; the gRPC peer is Envoy.
	source := req.GetAttributes().GetSource().GetAddress().GetSocketAddress().GetAddress()
	var xff [1]string
	forwardedFor := xff[:0]
	if v, ok := httpReq.GetHeaders()["x-forwarded-for"]; ok {
		xff[0] = v
		forwardedFor = xff[:]
	}
	d := Authorize(&s.Policy, authValues(httpReq, &buf), path, ClientSource{source, forwardedFor}, start)
	outcome, counter := s.Metrics.grpc.of(d.Verdict)
	s.Metrics.observe(counter, start, s.now())
	if d.Verdict == Throttled {
		s.Metrics.Throttled.Inc()
	}
	if d.Verdict != Admitted {
		client := addressString(s.Trusted.Of(source, forwardedFor))
		remote := client
		if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
			remote = p.Addr.String()
		}
		s.refusals.write(ctx, refusal{iface: InterfaceGRPC, outcome: outcome, presented: d.Presented,
			revoked: d.Verdict == KeyDeprecated, who: d.Who, remote: remote, client: client,
			method: httpReq.GetMethod(), path: httpReq.GetPath(), userAgent: httpReq.GetHeaders()["user-agent"]}, s.now())
		switch d.Verdict {
		case KeyMissing:
			return deniedMissingKey, nil
		case KeyDeprecated:
			return deniedDeprecated, nil
		case OutOfScope:
			return denied(http.StatusForbidden, codes.PermissionDenied, OutcomeScopeMismatch, d.Scope.Refusal()), nil
		case SourceNotAllowed:
			return deniedSourceNotAllowed, nil
		case RateLimited, Throttled:
			status, body := refusalOf(d)
			res := denied(status, codes.ResourceExhausted, outcome, body)
			for _, kv := range retryHeaders(d) {
				res.GetDeniedResponse().Headers = append(res.GetDeniedResponse().Headers, overwrite(kv[0], kv[1]))
			}
			return res, nil
		}
		return deniedInvalidKey, nil
	}
	return allowed(d.Who, d.Limit, httpReq), nil
}

// authValues returns the request's X-Octopods-Auth values. Envoy joins a
// repeated header's values with ",", which no key contains: a comma means
// more than one header was sent. With encode_raw_headers, the headers come
// one by one in header_map instead.
func authValues(r *authv3.AttributeContext_HttpRequest, buf *[2]string) []string {
	if hm := r.GetHeaderMap(); hm != nil && len(hm.GetHeaders()) > 0 {
		n := 0
		for _, h := range hm.GetHeaders() {
			if strings.EqualFold(h.GetKey(), headerAuth) {
				if n < len(buf) {
					buf[n] = h.GetValue()
					if buf[n] == "" {
						buf[n] = string(h.GetRawValue())
					}
				}
				n++
			}
		}
		return buf[:min(n, len(buf))]
	}
	v, ok := r.GetHeaders()[headerAuth]
	switch {
	case !ok:
		return nil
	case strings.IndexByte(v, ',') >= 0:
		buf[0], buf[1] = v, v
		return buf[:2]
	}
	buf[0] = v
	return buf[:1]
}

// allowed sets the identity headers (overwriting any the client sent),
// removes the key and every other spelling of an X-Octopods-* header the
// client sent, and hands the identity to Envoy's rate-limit and access-log
// filters as dynamic metadata.
// Dynamic metadata of an admitted request with a rate-limited key, for
// Envoy's global rate limit service (envoyproxy/ratelimit): the
// descriptor value that names the key object, and the limit in the shape
// of RateLimit.Override.DynamicMetadata, so one config enforces each
// object's own number across every Envoy (config/samples/gateways/).
const (
	MetadataRateLimitKey = "rateLimitKey"
	MetadataRateLimit    = "rateLimit"
)

func allowed(who keyindex.Identity, limit keyindex.RateLimit, r *authv3.AttributeContext_HttpRequest) *authv3.CheckResponse {
	identity := identityHeaders(who)
	set := func(name string) bool { // name: as Envoy sends it, lower case
		for _, h := range identity {
			if strings.EqualFold(h[0], name) {
				return true
			}
		}
		return false
	}
	// Every other X-Octopods-* spelling the client sent goes, including an
	// identity header of another key type (X-Octopods-Channel on a
	// workspace key's request).
	remove := []string{headerAuth}
	for name := range r.GetHeaders() {
		if IsOctopodsHeader(name) && name != headerAuth && !set(name) {
			remove = append(remove, name)
		}
	}
	for _, h := range r.GetHeaderMap().GetHeaders() {
		if name := strings.ToLower(h.GetKey()); IsOctopodsHeader(name) && name != headerAuth && !set(name) {
			remove = append(remove, name)
		}
	}
	headers := make([]*corev3.HeaderValueOption, 0, len(identity))
	metadata := make(map[string]*structpb.Value, len(identity))
	for _, h := range identity {
		headers = append(headers, overwrite(h[0], h[2]))
		metadata[h[1]] = structpb.NewStringValue(h[2])
	}
	if limit.PerSecond > 0 {
		// The declared number: Envoy's service counts across all replicas.
		metadata[MetadataRateLimitKey] = structpb.NewStringValue(who.Namespace + "/" + who.Type + "/" + who.Name)
		metadata[MetadataRateLimit] = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			"requests_per_unit": structpb.NewNumberValue(limit.PerSecond),
			"unit":              structpb.NewStringValue("SECOND"),
		}})
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers:         headers,
			HeadersToRemove: remove,
		}},
		DynamicMetadata: &structpb.Struct{Fields: metadata},
	}
}

func overwrite(name, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: name, Value: value},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// denied is a refusal with the same JSON body and headers as the HTTP
// reverse-proxy mode's, plus the reason header of forward-auth mode.
func denied(status int, code codes.Code, outcome string, body []byte) *authv3.CheckResponse {
	headers := []*corev3.HeaderValueOption{
		overwrite("content-type", "application/json"),
		overwrite(HeaderAuthError, outcome),
	}
	if status == http.StatusUnauthorized {
		headers = append(headers, overwrite("www-authenticate", wwwAuthValue[0]))
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(code), Message: outcome},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(status)},
			Headers: headers,
			Body:    string(body),
		}},
	}
}
