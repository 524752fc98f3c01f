package authproxy

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/octopods/octopods-operator/internal/keyindex"
)

// Metrics are the proxy's Prometheus metrics. Counters per outcome are
// resolved once, so the request path does no label or map lookups.
type Metrics struct {
	Registry *prometheus.Registry
	// Request outcomes of each interface: HTTP (reverse proxy or forward
	// auth) and gRPC ext_authz.
	http, grpc outcomeCounters
	latency    prometheus.Observer
	// LastUsedWrites counts status.lastUsedTime patches by result.
	LastUsedWrites *prometheus.CounterVec
	// LeakReports counts secret scanning reports' tokens by outcome.
	LeakReports *prometheus.CounterVec
	// Throttled counts requests refused for their source's failures.
	Throttled prometheus.Counter
}

// NewMetrics registers the proxy's metrics. staleness reports how long ago
// the key cache was last known to match the API server; perKey adds a
// series per key ID (--metrics-per-key).
func NewMetrics(ix *keyindex.Index, staleness func() time.Duration, perKey bool) *Metrics {
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "octopods_auth_proxy_requests_total",
		Help: "Requests by interface (http, grpc) and outcome: allowed, missing_key, invalid_key, not_ready.",
	}, []string{"interface", "outcome"})
	latency := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "octopods_auth_proxy_decision_duration_seconds",
		Help:    "Time to admit or refuse a request, excluding the upstream.",
		Buckets: []float64{1e-7, 2.5e-7, 5e-7, 1e-6, 2.5e-6, 5e-6, 1e-5, 5e-5, 1e-4, 1e-3},
	})
	lastUsed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "octopods_auth_proxy_last_used_writes_total",
		Help: "status.lastUsedTime patches of WorkspaceAPIKeys, by result: ok, superseded (a later use already recorded), not_found, error.",
	}, []string{"result"})
	leaks := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "octopods_auth_proxy_leak_reports_total",
		Help: "Secret scanning reports: tokens by outcome (true_positive: one of the operator's keys, current, previous or revoked; false_positive), and requests rejected (bad signature or body) or not recorded (error).",
	}, []string{"outcome"})
	for _, o := range []string{LeakOutcomeTruePositive, LeakOutcomeFalsePositive, LeakOutcomeRejected, LeakOutcomeError} {
		leaks.WithLabelValues(o)
	}
	throttled := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "octopods_auth_proxy_throttled_total",
		Help: "Requests refused (429) before any key lookup because their source failed too often (--throttle-failures per --throttle-window).",
	})
	reg.MustRegister(requests, latency, lastUsed, leaks, throttled,
		newPerWorkspace("octopods_auth_proxy_rate_limited_total",
			"Requests refused (429) over their key object's spec.rateLimit, per workspace, in this replica.", ix.RateLimited),
		newPerWorkspace("octopods_auth_proxy_revoked_key_presented_total",
			"Requests refused because they presented one of the workspace's revoked keys (status.revokedKeys), since the proxy started.", ix.RevokedPresented),
		newPerWorkspace("octopods_auth_proxy_allowed_requests_total",
			"Requests admitted per workspace, whatever key admitted them, since the proxy started.", ix.AllowedByWorkspace),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "octopods_auth_proxy_keys_loaded",
			Help: "Keys accepted now: current keys plus previous keys in their grace period.",
		}, func() float64 { return float64(ix.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "octopods_auth_proxy_key_cache_staleness_seconds",
			Help: "Seconds since the key cache was last confirmed in sync with the API server.",
		}, func() float64 { return staleness().Seconds() }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if perKey {
		reg.MustRegister(allowedByKey{ix})
	}
	return &Metrics{
		Registry:       reg,
		http:           newOutcomeCounters(requests, InterfaceHTTP),
		grpc:           newOutcomeCounters(requests, InterfaceGRPC),
		latency:        latency,
		LastUsedWrites: lastUsed,
		LeakReports:    leaks,
		Throttled:      throttled,
	}
}

// Interfaces, as labelled in metrics and named in the refusal log.
const (
	InterfaceHTTP = "http"
	InterfaceGRPC = "grpc"
)

// outcomeCounters are one interface's request counters, resolved once so
// the request path does no label lookups.
type outcomeCounters struct {
	allowed, missingKey, invalidKey, notReady, deprecatedKey, scopeMismatch, sourceNotAllowed, rateLimited, throttled prometheus.Counter
}

func newOutcomeCounters(requests *prometheus.CounterVec, iface string) outcomeCounters {
	return outcomeCounters{
		allowed:    requests.WithLabelValues(iface, OutcomeAllowed),
		missingKey: requests.WithLabelValues(iface, OutcomeMissingKey),
		invalidKey: requests.WithLabelValues(iface, OutcomeInvalidKey),
		notReady:   requests.WithLabelValues(iface, OutcomeNotReady),
		// Lower case like the others; the response says DEPRECATED_API_KEY.
		deprecatedKey:    requests.WithLabelValues(iface, "deprecated_api_key"),
		scopeMismatch:    requests.WithLabelValues(iface, OutcomeScopeMismatch),
		sourceNotAllowed: requests.WithLabelValues(iface, OutcomeSourceNotAllowed),
		rateLimited:      requests.WithLabelValues(iface, OutcomeRateLimited),
		throttled:        requests.WithLabelValues(iface, OutcomeThrottled),
	}
}

// of names a decision's outcome and returns its counter.
func (c *outcomeCounters) of(v Verdict) (string, prometheus.Counter) {
	switch v {
	case Admitted:
		return OutcomeAllowed, c.allowed
	case KeyMissing:
		return OutcomeMissingKey, c.missingKey
	case KeyDeprecated:
		return OutcomeDeprecatedKey, c.deprecatedKey
	case OutOfScope:
		return OutcomeScopeMismatch, c.scopeMismatch
	case SourceNotAllowed:
		return OutcomeSourceNotAllowed, c.sourceNotAllowed
	case RateLimited:
		return OutcomeRateLimited, c.rateLimited
	case Throttled:
		return OutcomeThrottled, c.throttled
	default:
		return OutcomeInvalidKey, c.invalidKey
	}
}

func (m *Metrics) observe(outcome prometheus.Counter, start, end time.Time) {
	outcome.Inc()
	m.latency.Observe(end.Sub(start).Seconds())
}

// allowedByKey exposes admitted requests per key ID from the index's own
// counters at scrape time: no per-key series is kept in memory, and keys
// never used produce no series.
type allowedByKey struct{ ix *keyindex.Index }

var allowedByKeyDesc = prometheus.NewDesc("octopods_auth_proxy_allowed_requests_by_key_total",
	"Requests admitted per key, since the proxy started (--metrics-per-key): a rotation starts a new series.", []string{"namespace", "workspace", "key_id"}, nil)

func (c allowedByKey) Describe(ch chan<- *prometheus.Desc) { ch <- allowedByKeyDesc }

func (c allowedByKey) Collect(ch chan<- prometheus.Metric) {
	for _, u := range c.ix.Counts() {
		ch <- prometheus.MustNewConstMetric(allowedByKeyDesc, prometheus.CounterValue, float64(u.Allowed), u.Namespace, u.Workspace, u.KeyID)
	}
}

// perWorkspace exposes one count per workspace from the index's counters
// at scrape time: a series per workspace that has one, surviving rotations
// (key IDs are in the log and the status, never a label).
type perWorkspace struct {
	desc   *prometheus.Desc
	counts func() []keyindex.WorkspaceCount
}

func newPerWorkspace(name, help string, counts func() []keyindex.WorkspaceCount) perWorkspace {
	return perWorkspace{prometheus.NewDesc(name, help, []string{"namespace", "workspace"}, nil), counts}
}

func (c perWorkspace) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c perWorkspace) Collect(ch chan<- prometheus.Metric) {
	for _, w := range c.counts() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(w.Count), w.Namespace, w.Workspace)
	}
}
