// Package authproxy admits or refuses each request by its X-Octopods-Auth
// header, against the key digests the operator publishes, in front of an
// upstream (reverse proxy) or for nginx, Envoy and Traefik (forward auth).
package authproxy

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/octopods/octopods-operator/internal/keyindex"
)

// Header names of the contract.
const (
	HeaderAuth               = "X-Octopods-Auth"
	HeaderAuthError          = "X-Octopods-Auth-Error"
	HeaderWorkspace          = "X-Octopods-Workspace"
	HeaderWorkspaceNamespace = "X-Octopods-Workspace-Namespace"
	HeaderKeyID              = "X-Octopods-Key-ID"
)

// Outcomes, as counted and as named in refusals.
const (
	OutcomeAllowed    = "allowed"
	OutcomeMissingKey = "missing_key"
	OutcomeInvalidKey = "invalid_key"
	OutcomeNotReady   = "not_ready"
)

// Bodies are fixed, so a refusal allocates nothing for them.
var (
	bodyMissingKey = []byte(`{"error":"missing_key"}` + "\n")
	bodyInvalidKey = []byte(`{"error":"invalid_key"}` + "\n")
	bodyNotReady   = []byte(`{"error":"not_ready"}` + "\n")
	// Pre-canonicalised header names, so none is canonicalised per request.
	canonicalAuth      = http.CanonicalHeaderKey(HeaderAuth)
	canonicalWorkspace = http.CanonicalHeaderKey(HeaderWorkspace)
	canonicalNamespace = http.CanonicalHeaderKey(HeaderWorkspaceNamespace)
	canonicalKeyID     = http.CanonicalHeaderKey(HeaderKeyID)
	canonicalAuthError = http.CanonicalHeaderKey(HeaderAuthError)
	canonicalRealIP    = http.CanonicalHeaderKey("X-Real-Ip")
	wwwAuthValue       = []string{`Key realm="octopods", header="X-Octopods-Auth"`}
	jsonType           = []string{"application/json"}
	connectionClose    = []string{"close"}
)

// Handler makes the decision for each request and, in reverse-proxy mode,
// forwards admitted ones.
type Handler struct {
	Index *keyindex.Index
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
	h := &Handler{Index: ix, Ready: ready, Metrics: m, Log: log, now: time.Now, refusals: newRefusalLog(log, ix, nil)}
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
	result, who, presented := Authorize(h.Index, r.Header[canonicalAuth], start)
	detail := ""
	if result == keyindex.Allowed && h.proxy == nil && hasSpoofedIdentity(r.Header) {
		// In forward-auth mode the gateway, not this proxy, forwards the
		// client's headers. It overwrites the identity headers by their
		// exact names, but an underscore spelling would reach an upstream
		// that folds "_" into "-" (CGI, WSGI, Rack, PHP): refuse it.
		result, detail = keyindex.Invalid, detailSpoofedHeader
	}
	outcome, counter := h.Metrics.http.of(result)
	h.Metrics.observe(counter, start, h.now())
	if result != keyindex.Allowed {
		h.refuse(w, r, refusal{outcome: outcome, presented: presented, detail: detail, revoked: result == keyindex.Revoked, who: who})
		return
	}
	if h.proxy == nil {
		setIdentity(w.Header(), who)
		w.WriteHeader(http.StatusOK)
		return
	}
	h.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, who)))
}

// SetTrustedProxies sets the peers (load balancers) whose X-Forwarded-For
// names the client in the refusal log.
func (h *Handler) SetTrustedProxies(trusted []netip.Prefix) {
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

// Authorize is the one decision of every interface: the request's
// X-Octopods-Auth values must be exactly one, holding a well-formed, known,
// unexpired key. It returns the presented value only for the audit log's
// key ID. It does not allocate.
func Authorize(ix *keyindex.Index, values []string, now time.Time) (keyindex.Result, keyindex.Identity, string) {
	switch len(values) {
	case 0:
		return keyindex.Missing, keyindex.Identity{}, ""
	case 1:
	default:
		// Two keys: which one to trust is a guess, so neither.
		return keyindex.Invalid, keyindex.Identity{}, ""
	}
	result, who := ix.Lookup(values[0], now)
	return result, who, values[0]
}

// detailSpoofedHeader explains, in the refusal log only, an otherwise valid
// key refused for an identity header spelled with underscores.
const detailSpoofedHeader = "client-sent X-Octopods header spelled with underscores"

// refuse answers a refused request, and logs it with where it came from.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, why refusal) {
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
	if h.proxy == nil {
		// nginx drops an auth subrequest's body and, when one is sent, the
		// keep-alive connection with it: the reason goes in a header.
		hdr[canonicalAuthError] = []string{outcome}
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	hdr["Www-Authenticate"] = wwwAuthValue
	body := bodyInvalidKey
	if outcome == OutcomeMissingKey {
		body = bodyMissingKey
	}
	writeBody(w, http.StatusUnauthorized, body, false)
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

func setIdentity(h http.Header, who keyindex.Identity) {
	h[canonicalWorkspace] = []string{who.Workspace}
	h[canonicalNamespace] = []string{who.Namespace}
	h[canonicalKeyID] = []string{who.KeyID}
}
