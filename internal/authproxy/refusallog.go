package authproxy

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/clientaddr"
	"github.com/octopods/octopods-operator/internal/keyindex"
)

// Refusal log bounds: a client trying keys in a loop must not flood the log
// (every refusal is still counted in the metrics).
const (
	// refusalLogBurst lines per client address per refusalLogInterval; then
	// one summary line with the count.
	refusalLogBurst    = 5
	refusalLogInterval = 10 * time.Second
	// refusalLogClients bounds the addresses tracked; past it, all further
	// addresses share one budget, so a spray of source addresses cannot grow
	// the map either.
	refusalLogClients = 10_000
	// refusalLogKeyBytes bounds the bytes of the addresses tracked too:
	// entries alone bound nothing if one key can be megabytes.
	refusalLogKeyBytes = 512 << 10
	otherClients       = "other"
)

// refusalLog writes the refusal audit line, bounded per client address, and
// records every attempt with a revoked key in the index, logged or not.
type refusalLog struct {
	log     *slog.Logger
	index   *keyindex.Index
	trusted clientaddr.Trusted
	mu      sync.Mutex
	clients map[string]*clientBudget
	// keyBytes is the sum of the lengths of clients' keys.
	keyBytes int
}

type clientBudget struct {
	windowStart time.Time
	logged      int
	suppressed  int
}

func newRefusalLog(log *slog.Logger, ix *keyindex.Index, trusted clientaddr.Trusted) *refusalLog {
	return &refusalLog{log: log, index: ix, trusted: trusted, clients: map[string]*clientBudget{}}
}

// ReasonRevokedKey names, in the refusal log only, a key that once worked:
// the client gets invalid_key, as for any unknown key.
const ReasonRevokedKey = "revoked_key"

// refusal is what the audit line says of one refused request.
type refusal struct {
	iface, outcome, presented, detail string
	remote, client, method, path      string
	// userAgent, and the URI the client asked the gateway for (forward
	// auth: X-Original-URI or X-Forwarded-Uri), when known.
	userAgent, originalURI string
	// revoked: the key is one of who's revoked keys.
	revoked bool
	who     keyindex.Identity
}

// write logs a refusal unless its client is over its budget, and records a
// revoked key's attempt. The key ID is
// public, and tells support which key is being tried; only a well-formed
// key has one. The key itself is never logged.
func (l *refusalLog) write(ctx context.Context, r refusal, now time.Time) {
	// A revoked key's first attempt each second is always logged, outside
	// the client's budget: other refusals from that client cannot hide it.
	recorded := r.client
	if recorded == invalidAddress {
		recorded = "" // status.lastRevokedKeyUse.clientAddress holds an IP address or nothing
	}
	sighted := r.revoked && l.index.SawRevoked(r.presented, recorded, now)
	if !sighted && !l.allow(r.client, now) {
		return
	}
	reason := r.outcome
	if r.revoked {
		reason = ReasonRevokedKey
	}
	attrs := []slog.Attr{
		slog.String("reason", reason),
		slog.String("interface", r.iface),
		slog.String("remote_addr", truncate(r.remote, maxLoggedPath)),
		slog.String("client_address", r.client),
		slog.String("method", truncate(r.method, maxLoggedMethod)),
		slog.String("path", truncatePath(r.path)),
		slog.String("user_agent", truncatePath(r.userAgent)),
	}
	if r.originalURI != "" {
		attrs = append(attrs, slog.String("original_uri", truncatePath(r.originalURI)))
	}
	if r.detail != "" {
		attrs = append(attrs, slog.String("detail", r.detail))
	}
	if r.presented != "" && apikey.Validate(r.presented) == nil {
		attrs = append(attrs, slog.String("key_id", apikey.ID(r.presented)))
	}
	if r.revoked {
		attrs = append(attrs, slog.String("namespace", r.who.Namespace), slog.String("workspace", r.who.Workspace))
	}
	l.log.LogAttrs(ctx, slog.LevelInfo, "request refused", attrs...)
}

// allow reports whether to log a refusal from client now.
func (l *refusalLog) allow(client string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.clients[client]
	if b == nil {
		if len(l.clients) >= refusalLogClients || l.keyBytes+len(client) > refusalLogKeyBytes {
			client = otherClients
			b = l.clients[client]
		}
		if b == nil {
			b = &clientBudget{windowStart: now}
			l.clients[client] = b
			l.keyBytes += len(client)
		}
	}
	if b.logged < refusalLogBurst {
		b.logged++
		return true
	}
	b.suppressed++
	return false
}

// flush writes one summary line per client whose lines were left out, and
// starts a new interval for everyone.
func (l *refusalLog) flush() {
	l.mu.Lock()
	clients := l.clients
	l.clients, l.keyBytes = map[string]*clientBudget{}, 0
	l.mu.Unlock()
	for client, b := range clients {
		if b.suppressed > 0 {
			l.log.Info("requests refused, not logged one by one", "client_address", client, "count", b.suppressed,
				"since", b.windowStart.UTC().Format(time.RFC3339))
		}
	}
}

func (l *refusalLog) run(ctx context.Context) {
	every(ctx, refusalLogInterval, l.flush)
}

// clientAddress is the address the request came from (clientaddr.Of), in
// canonical form, or invalidAddress.
func (l *refusalLog) clientAddress(r *http.Request) string {
	return addressString(l.trusted.Of(r.RemoteAddr, r.Header["X-Forwarded-For"]))
}

// addressString is a in canonical form, or invalidAddress.
func addressString(a netip.Addr) string {
	if !a.IsValid() {
		return invalidAddress
	}
	return a.String()
}

// ParseCIDRs reads --trusted-proxy-cidrs.
func ParseCIDRs(values []string) (clientaddr.Trusted, error) {
	return clientaddr.Parse("--trusted-proxy-cidrs", values)
}
