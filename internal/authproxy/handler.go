// Package authproxy admits or refuses each request by its X-Octopods-Auth
// header, against the key digests the operator publishes, in front of an
// upstream (reverse proxy) or for nginx, Envoy and Traefik (forward auth).
package authproxy

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/octopods/octopods-operator/internal/clientaddr"
	"github.com/octopods/octopods-operator/internal/keyindex"
	"github.com/octopods/octopods-operator/internal/scope"
	"github.com/octopods/octopods-operator/internal/throttle"
)

// Header names of the contract.
const (
	HeaderAuth                    = "X-Octopods-Auth"
	HeaderAuthError               = "X-Octopods-Auth-Error"
	HeaderWorkspace               = "X-Octopods-Workspace"
	HeaderWorkspaceNamespace      = "X-Octopods-Workspace-Namespace"
	HeaderKeyID                   = "X-Octopods-Key-ID"
	HeaderKeyType                 = "X-Octopods-Key-Type"
	HeaderChannel                 = "X-Octopods-Channel"
	HeaderChannelType             = "X-Octopods-Channel-Type"
	HeaderWhatsAppBusinessAccount = "X-Octopods-WhatsApp-Business-Account"
)

// Outcomes, as counted and as named in refusals: the refusal's error code.
const (
	OutcomeAllowed    = "allowed"
	OutcomeMissingKey = "missing_key"
	OutcomeInvalidKey = "invalid_key"
	OutcomeNotReady   = "not_ready"
	// OutcomeDeprecatedKey is Octopods' own answer to a rotated or revoked
	// key (the operator remembers it in status.revokedKeys).
	OutcomeDeprecatedKey = "DEPRECATED_API_KEY"
	// OutcomeScopeMismatch: a valid key on a path its type does not take.
	OutcomeScopeMismatch = "key_scope_mismatch"
	// OutcomeSourceNotAllowed: a valid key from outside its
	// allowedSourceRanges.
	OutcomeSourceNotAllowed = "source_not_allowed"
	// OutcomeRateLimited: a valid key over its object's spec.rateLimit.
	OutcomeRateLimited = "rate_limited"
	// OutcomeThrottled: a source refused for failing too often.
	OutcomeThrottled = "throttled"
)

// Bodies are fixed, so a refusal allocates nothing for them.
var (
	bodyMissingKey       = []byte(`{"error":"missing_key"}` + "\n")
	bodyInvalidKey       = []byte(`{"error":"invalid_key"}` + "\n")
	bodyNotReady         = []byte(`{"error":"not_ready"}` + "\n")
	bodyDeprecatedKey    = []byte(`{"error":"DEPRECATED_API_KEY"}` + "\n")
	bodySourceNotAllowed = []byte(`{"error":"source_not_allowed"}` + "\n")
	bodyRateLimited      = []byte(`{"error":"rate_limited"}` + "\n")
	bodyThrottled        = []byte(`{"error":"throttled"}` + "\n")
	// Pre-canonicalised header names, so none is canonicalised per request.
	canonicalAuth      = http.CanonicalHeaderKey(HeaderAuth)
	canonicalWorkspace = http.CanonicalHeaderKey(HeaderWorkspace)
	canonicalNamespace = http.CanonicalHeaderKey(HeaderWorkspaceNamespace)
	canonicalKeyID     = http.CanonicalHeaderKey(HeaderKeyID)
	canonicalKeyType   = http.CanonicalHeaderKey(HeaderKeyType)
	canonicalChannel   = http.CanonicalHeaderKey(HeaderChannel)
	canonicalChanType  = http.CanonicalHeaderKey(HeaderChannelType)
	canonicalWABA      = http.CanonicalHeaderKey(HeaderWhatsAppBusinessAccount)
	canonicalAuthError = http.CanonicalHeaderKey(HeaderAuthError)
	canonicalRealIP    = http.CanonicalHeaderKey("X-Real-Ip")
	canonicalXFF       = http.CanonicalHeaderKey("X-Forwarded-For")
	wwwAuthValue       = []string{`Key realm="octopods", header="X-Octopods-Auth"`}
	jsonType           = []string{"application/json"}
	connectionClose    = []string{"close"}
)

// Handler makes the decision for each request and, in reverse-proxy mode,
// forwards admitted ones.
type Handler struct {
	Policy
	// Ready reports whether the first full sync of published keys is done;
	// until then every request gets 503, never a guess.
	Ready   func() bool
	Metrics *Metrics
	Log     *slog.Logger
	// Upstream nil means forward-auth mode.
	proxy    *httputil.ReverseProxy
	now      func() time.Time
	refusals *refusalLog
}

// NewHandler builds a handler; upstream nil selects forward-auth mode.
func NewHandler(ix *keyindex.Index, ready func() bool, m *Metrics, log *slog.Logger, upstream *url.URL, transport http.RoundTripper) *Handler {
	h := &Handler{Policy: Policy{Index: ix, Scopes: scope.Default()}, Ready: ready, Metrics: m, Log: log, now: time.Now, refusals: newRefusalLog(log, ix, nil)}
	if upstream != nil {
		h.proxy = &httputil.ReverseProxy{
			// Rewrite (unlike Director) drops client X-Forwarded-* before
			// SetXForwarded writes ours: nothing a client sends about its
			// origin is passed on as if we had checked it.
			//
			// The identity is written here, on the outbound request, because
			// ReverseProxy removes the headers a client names in Connection
			// after ServeHTTP starts and before Rewrite: set any earlier, a
			// client could strip them ("Connection: X-Octopods-Key-Id").
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(upstream)
				pr.SetXForwarded()
				pr.Out.Host = pr.In.Host
				scrub(pr.Out.Header)
				who, _ := pr.In.Context().Value(identityKey{}).(keyindex.Identity)
				setIdentity(pr.Out.Header, who)
				refuseUpgrades(pr.Out.Header)
				// X-Real-Ip is what many upstreams log and rate-limit by: the
				// client's own value would be believed, so it is ours.
				pr.Out.Header[canonicalRealIP] = []string{h.refusals.clientAddress(pr.In)}
			},
			Transport: transport,
			ErrorLog:  slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
	}
	return h
}

// ServeHTTP decides, then forwards or answers.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.now()
	if !h.Ready() {
		h.Metrics.observe(h.Metrics.http.notReady, start, h.now())
		writeBody(w, http.StatusServiceUnavailable, bodyNotReady, h.proxy == nil)
		return
	}
	d := Authorize(&h.Policy, r.Header[canonicalAuth], h.requestPath(r), ClientSource{r.RemoteAddr, r.Header[canonicalXFF]}, start)
	detail := ""
	if d.Verdict == Admitted && h.proxy == nil && hasSpoofedIdentity(r.Header) {
		// In forward-auth mode the gateway, not this proxy, forwards the
		// client's headers. It overwrites the identity headers by their
		// exact names, but an underscore spelling would reach an upstream
		// that folds "_" into "-" (CGI, WSGI, Rack, PHP): refuse it.
		d.Verdict, detail = KeyInvalid, detailSpoofedHeader
	}
	outcome, counter := h.Metrics.http.of(d.Verdict)
	h.Metrics.observe(counter, start, h.now())
	if d.Verdict == Throttled {
		h.Metrics.Throttled.Inc()
	}
	if d.Verdict != Admitted {
		h.refuse(w, r, d, refusal{outcome: outcome, presented: d.Presented, detail: detail, revoked: d.Verdict == KeyDeprecated, who: d.Who})
		return
	}
	if h.proxy == nil {
		setIdentity(w.Header(), d.Who)
		w.WriteHeader(http.StatusOK)
		return
	}
	h.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, d.Who)))
}

// requestPath is the path the scope rules judge, still escaped as sent:
// the request's own, or in forward-auth mode the client's request as the
// gateway names it (X-Original-URI from nginx, X-Forwarded-Uri from
// Traefik), without its query. A gateway that names neither is judged by
// the subrequest's path: channel and WhatsApp keys are then refused
// everywhere but on their own families' paths.
func (h *Handler) requestPath(r *http.Request) string {
	if h.proxy == nil {
		uri := headerValue(r.Header, "X-Original-Uri")
		if uri == "" {
			uri = headerValue(r.Header, "X-Forwarded-Uri")
		}
		if uri != "" {
			if q := strings.IndexByte(uri, '?'); q >= 0 {
				uri = uri[:q]
			}
			return uri
		}
	}
	return r.URL.EscapedPath()
}

// headerValue is h's first value for an already canonical name, without
// canonicalising it again.
func headerValue(h http.Header, canonical string) string {
	if v := h[canonical]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// SetTrustedProxies sets the peers (load balancers) whose X-Forwarded-For
// names the client in the refusal log.
func (h *Handler) SetTrustedProxies(trusted clientaddr.Trusted) {
	h.Trusted = trusted
	h.refusals = newRefusalLog(h.Log, h.Index, trusted)
}

// refuseUpgrades drops every protocol upgrade but WebSocket: once upgraded,
// the connection to the upstream carries whatever the client sends next,
// and for h2c that is further requests this proxy never sees (h2c
// smuggling). The request goes on as plain HTTP/1.1. WebSocket upgrades
// pass, as any request does, only with a valid key.
func refuseUpgrades(h http.Header) {
	if up := h.Get("Upgrade"); up != "" && !strings.EqualFold(up, "websocket") {
		h.Del("Upgrade")
		h.Del("Connection")
		h.Del("Http2-Settings")
	}
}

// identityKey carries the admitted identity from ServeHTTP to Rewrite.
type identityKey struct{}

// Verdict is what Authorize decided, step by step.
type Verdict int

const (
	// Admitted is a current key, or a previous one in its grace period, on a
	// path its type takes.
	Admitted Verdict = iota
	// KeyMissing is no X-Octopods-Auth.
	KeyMissing
	// KeyInvalid is a key malformed, unknown, expired, or more than one key.
	KeyInvalid
	// KeyDeprecated is a key the operator remembers as rotated away or
	// revoked: DEPRECATED_API_KEY.
	KeyDeprecated
	// OutOfScope is a valid key on a path no scope rule gives its type.
	OutOfScope
	// SourceNotAllowed is a valid key presented from outside its
	// allowedSourceRanges.
	SourceNotAllowed
	// RateLimited is a valid key over its object's rate limit.
	RateLimited
	// Throttled is a source that failed too often, refused unread.
	Throttled
)

// ClientSource is where a request came from, as its interface tells: read only
// for a key with allowedSourceRanges.
type ClientSource struct {
	// Peer is the connection's peer ("ip:port" or "ip"): for gRPC, Envoy's
	// source.address. ForwardedFor are its X-Forwarded-For values, believed
	// only from a trusted peer.
	Peer         string
	ForwardedFor []string
}

// Decision is Authorize's answer: the verdict, who the key is (for a
// valid or deprecated key), the presented value (for the audit log's key
// ID only) and the scope rule that judged the path.
type Decision struct {
	Verdict   Verdict
	Who       keyindex.Identity
	Presented string
	Scope     scope.Decision
	// Client is the client's address, when the decision needed it.
	Client netip.Addr
	// RetryAfter is when a RateLimited or Throttled request may come back;
	// Limit the rate limit that refused it.
	RetryAfter time.Duration
	Limit      keyindex.RateLimit
}

// Policy is what the decision needs besides the request: the keys, the
// scope rules, whose X-Forwarded-For is believed, and the throttle of
// failing sources (nil: off).
type Policy struct {
	Index *keyindex.Index
	// Scopes decide which key types each path takes.
	Scopes   *scope.Rules
	Trusted  clientaddr.Trusted
	Throttle *throttle.Throttle
}

// Authorize is the one decision of every interface, in order:
//  1. a source throttled for failing too often: 429, before any lookup;
//  2. exactly one X-Octopods-Auth value, a well-formed, known, unexpired
//     key (a remembered revoked one is deprecated);
//  3. the path's scope rule for the key's type;
//  4. the key's allowedSourceRanges;
//  5. the key object's rate limit;
//  6. admit, and record the use.
//
// The client's address is worked out only when a step needs it: a source
// may be throttled, the key has ranges, or the request is refused. It does
// not allocate for a path in normal form.
func Authorize(p *Policy, values []string, path string, from ClientSource, now time.Time) Decision {
	var d Decision
	if p.Throttle.Active(now) {
		d.Client = p.Trusted.Of(from.Peer, from.ForwardedFor)
		if blocked, wait := p.Throttle.Blocked(d.Client, now); blocked {
			d.Verdict, d.RetryAfter = Throttled, wait
			return d
		}
	}
	switch len(values) {
	case 0:
		d.Verdict = KeyMissing
		return d
	case 1:
	default:
		// Two keys: which one to trust is a guess, so neither.
		d.Verdict = KeyInvalid
		p.failed(&d, from, now)
		return d
	}
	result, who, use := p.Index.Find(values[0], now)
	d.Who, d.Presented = who, values[0]
	switch result {
	case keyindex.Missing:
		d.Verdict = KeyMissing
	case keyindex.Invalid:
		d.Verdict = KeyInvalid
		p.failed(&d, from, now)
	case keyindex.Revoked:
		d.Verdict = KeyDeprecated
		p.failed(&d, from, now)
	default:
		var ok bool
		if ok, d.Scope = p.Scopes.Allows(path, who.Type, who.ChannelType); !ok {
			d.Verdict = OutOfScope
			break
		}
		if use.Restricted() {
			if d.Client = p.Trusted.Of(from.Peer, from.ForwardedFor); !use.AllowsSource(d.Client) {
				// Evidence that someone else holds the key: recorded.
				use.SawDisallowedSource(who.KeyID, d.Client, now)
				d.Verdict = SourceNotAllowed
				break
			}
		}
		if ok, wait := use.Allow(int32(p.Index.Replicas()), now); !ok {
			d.Verdict, d.RetryAfter, d.Limit = RateLimited, wait, use.RateLimit()
			use.SawRateLimited(who.KeyID, p.Trusted.Of(from.Peer, from.ForwardedFor), now)
			break
		}
		d.Limit = use.RateLimit()
		use.Record(now) // only an admitted request is a use of the key
	}
	return d
}

// failed counts a refused guess against its source.
func (p *Policy) failed(d *Decision, from ClientSource, now time.Time) {
	if p.Throttle == nil {
		return
	}
	if !d.Client.IsValid() {
		d.Client = p.Trusted.Of(from.Peer, from.ForwardedFor)
	}
	p.Throttle.Failed(d.Client, now)
}

// detailSpoofedHeader explains, in the refusal log only, an otherwise valid
// key refused for an identity header spelled with underscores.
const detailSpoofedHeader = "client-sent X-Octopods header spelled with underscores"

// refuse answers a refused request, and logs it with where it came from.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, d Decision, why refusal) {
	why.iface, why.remote, why.client = InterfaceHTTP, r.RemoteAddr, h.refusals.clientAddress(r)
	why.method, why.path, why.userAgent = r.Method, r.URL.Path, r.UserAgent()
	if h.proxy == nil {
		// The gateway's subrequest: the client's own request is named in
		// X-Original-URI (nginx) or X-Forwarded-Uri (Traefik).
		why.originalURI = r.Header.Get("X-Original-Uri")
		if why.originalURI == "" {
			why.originalURI = r.Header.Get("X-Forwarded-Uri")
		}
	}
	h.refusals.write(r.Context(), why, h.now())
	outcome := why.outcome

	hdr := w.Header()
	if r.ContentLength != 0 {
		// Answer without reading the body: Go's server would otherwise
		// drain up to 256 KiB of it before the 401, which a slow client
		// can stretch for as long as it likes. The connection goes.
		hdr["Connection"] = connectionClose
	}
	status, body := refusalOf(d)
	for _, kv := range retryHeaders(d) {
		hdr[kv[0]] = []string{kv[1]}
	}
	if h.proxy == nil {
		// nginx drops an auth subrequest's body and, when one is sent, the
		// keep-alive connection with it: the reason goes in a header. And
		// auth_request turns any status but 401 and 403 into a 500, so a
		// deprecated key's 400 is a 401 here (docs/auth-proxy.md gives
		// nginx's lines that make it the 400 again).
		hdr[canonicalAuthError] = []string{outcome}
		if status == http.StatusBadRequest {
			status = http.StatusUnauthorized
		}
		w.WriteHeader(status)
		return
	}
	if status == http.StatusUnauthorized {
		hdr["Www-Authenticate"] = wwwAuthValue
	}
	writeBody(w, status, body, false)
}

// retryHeaders are the headers of a 429: Retry-After (whole seconds, at
// least 1), and for a rate limit the IETF draft's RateLimit-Policy (the
// object's sustained rate, per second, in this replica) and RateLimit
// (none left; when to come back).
func retryHeaders(d Decision) [][2]string {
	if d.Verdict != RateLimited && d.Verdict != Throttled {
		return nil
	}
	after := strconv.FormatInt(max(1, int64(math.Ceil(d.RetryAfter.Seconds()))), 10)
	out := [][2]string{{"Retry-After", after}}
	if d.Verdict == RateLimited {
		out = append(out,
			[2]string{"Ratelimit-Policy", fmt.Sprintf(`"key";q=%d;w=1`, max(1, int64(math.Round(d.Limit.PerSecond))))},
			[2]string{"Ratelimit", `"key";r=0;t=` + after})
	}
	return out
}

// refusalOf is the status and body of a refused decision: what Octopods'
// API answers.
func refusalOf(d Decision) (int, []byte) {
	switch d.Verdict {
	case KeyMissing:
		return http.StatusUnauthorized, bodyMissingKey
	case KeyDeprecated:
		return http.StatusBadRequest, bodyDeprecatedKey
	case OutOfScope:
		return http.StatusForbidden, d.Scope.Refusal()
	case SourceNotAllowed:
		return http.StatusForbidden, bodySourceNotAllowed
	case RateLimited:
		return http.StatusTooManyRequests, bodyRateLimited
	case Throttled:
		return http.StatusTooManyRequests, bodyThrottled
	}
	return http.StatusUnauthorized, bodyInvalidKey
}

func writeBody(w http.ResponseWriter, status int, body []byte, empty bool) {
	if empty {
		w.WriteHeader(status)
		return
	}
	w.Header()["Content-Type"] = jsonType
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// scrub removes the credential and every X-Octopods-* header a client sent,
// in any spelling an upstream could read as one: only the proxy may say who
// the caller is.
func scrub(h http.Header) {
	for name := range h {
		if IsOctopodsHeader(name) {
			delete(h, name)
		}
	}
}

// hasSpoofedIdentity reports a client header that an upstream would read as
// an X-Octopods-* header but that is not spelled as one, so a gateway that
// overwrites the identity headers by name would let it through.
func hasSpoofedIdentity(h http.Header) bool {
	for name := range h {
		if IsOctopodsHeader(name) && strings.IndexByte(name, '_') >= 0 {
			return true
		}
	}
	return false
}

// IsOctopodsHeader reports whether an upstream may take the header name for
// X-Octopods-*: letters compared without case, and "_" taken for "-", as
// CGI, WSGI, Rack and PHP fold both into the same variable.
func IsOctopodsHeader(name string) bool {
	const prefix = "x-octopods-"
	if len(name) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := name[i]
		switch {
		case c == '_':
			c = '-'
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// setIdentity writes the identity headers of who: those of every key,
// and those of its type. identityHeaders lists the same, for gRPC.
func setIdentity(h http.Header, who keyindex.Identity) {
	h[canonicalWorkspace] = []string{who.Workspace}
	h[canonicalNamespace] = []string{who.Namespace}
	h[canonicalKeyID] = []string{who.KeyID}
	h[canonicalKeyType] = []string{who.Type}
	switch who.Type {
	case scope.TypeChannel:
		h[canonicalChannel] = []string{who.Channel()}
		h[canonicalChanType] = []string{who.ChannelType}
	case scope.TypeWhatsApp:
		h[canonicalWABA] = []string{who.WhatsAppBusinessAccount()}
	}
}

// identityHeaders are the identity headers of who, spelled as the
// contract spells them, with their gRPC dynamic-metadata names: one list
// for every interface.
func identityHeaders(who keyindex.Identity) [][3]string {
	out := [][3]string{
		{HeaderWorkspace, "workspace", who.Workspace},
		{HeaderWorkspaceNamespace, "namespace", who.Namespace},
		{HeaderKeyID, "keyID", who.KeyID},
		{HeaderKeyType, "keyType", who.Type},
	}
	switch who.Type {
	case scope.TypeChannel:
		out = append(out, [3]string{HeaderChannel, "channel", who.Channel()}, [3]string{HeaderChannelType, "channelType", who.ChannelType})
	case scope.TypeWhatsApp:
		out = append(out, [3]string{HeaderWhatsAppBusinessAccount, "whatsAppBusinessAccount", who.WhatsAppBusinessAccount()})
	}
	return out
}
