package controllers

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
)

// The manager's domain metrics, as cert-manager has for certificates, on
// controller-runtime's /metrics beside its own. Per-key series are read from
// the cache at scrape time: one per key, gone with the key, none kept in
// memory in between.
var (
	keyEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "octopods_operator_key_events_total",
		Help: "Events the operator emitted on keys of every kind, by reason: KeyIssued, KeyRotated, KeyReissued, SecretConflict, PreviousKeyExpired, RevokedKeyPresented, …",
	}, []string{"reason"})
	// Per key kind: octopods_workspaceapikey_ready, octopods_channelapikey_ready,
	// octopods_whatsappapikey_ready, and the same for next_rotation_seconds.
	keyReadyDescs, nextRotationDescs = perKind(
		func(k octopodsv1alpha1.KeyKind) *prometheus.Desc {
			return prometheus.NewDesc("octopods_"+strings.ToLower(k.Kind)+"_ready",
				"1 when the "+k.Kind+"'s key is issued and in its Secret (Ready=True), else 0.", []string{"namespace", "name"}, nil)
		},
		func(k octopodsv1alpha1.KeyKind) *prometheus.Desc {
			return prometheus.NewDesc("octopods_"+strings.ToLower(k.Kind)+"_next_rotation_seconds",
				"Seconds until spec.rotationInterval rotates the "+k.Kind+"'s key (status.nextRotationAt); keys without a schedule have no series.", []string{"namespace", "name"}, nil)
		})
	invalidSpecDesc = prometheus.NewDesc("octopods_operator_invalid_objects",
		"Objects whose spec the operator cannot read (condition InvalidSpec): nothing is done for them until they are fixed.", []string{"kind"}, nil)
	keysCollector = &keyStatusCollector{}
	// slicesBuilt says the KeyDigestSlices were built since this manager
	// started leading (SliceReconciler.BuildAll).
	slicesBuilt = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "octopods_operator_key_digest_slices_built",
		Help: "1 once this manager, leading, has built every namespace's KeyDigestSlices after its start, else 0.",
	})
)

func init() {
	metrics.Registry.MustRegister(keyEvents, keysCollector, slicesBuilt)
}

// keyStatusCollector reports each WorkspaceAPIKey's readiness and next
// scheduled rotation from the running manager's cache.
type keyStatusCollector struct {
	informers atomic.Pointer[cache.Informers]
	now       func() time.Time
}

// use makes the collector read the manager's cache, replacing any earlier
// manager's in this process.
func (c *keyStatusCollector) use(informers cache.Informers, now func() time.Time) {
	c.now = now
	c.informers.Store(&informers)
}

// perKind makes the two per-kind descriptors of every key kind.
func perKind(ready, next func(octopodsv1alpha1.KeyKind) *prometheus.Desc) (map[string]*prometheus.Desc, map[string]*prometheus.Desc) {
	r, n := map[string]*prometheus.Desc{}, map[string]*prometheus.Desc{}
	for _, k := range octopodsv1alpha1.KeyKinds {
		r[k.Kind], n[k.Kind] = ready(k), next(k)
	}
	return r, n
}

func (c *keyStatusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, k := range octopodsv1alpha1.KeyKinds {
		ch <- keyReadyDescs[k.Kind]
		ch <- nextRotationDescs[k.Kind]
	}
	ch <- invalidSpecDesc
}

func (c *keyStatusCollector) Collect(ch chan<- prometheus.Metric) {
	informers := c.informers.Load()
	if informers == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now := c.now()
	for _, kind := range octopodsv1alpha1.KeyKinds {
		invalid := 0
		// One key decoded at a time: no copy of every key at every scrape.
		if err := eachKey(ctx, *informers, kind, "", func(k octopodsv1alpha1.KeyObject) {
			settings, st := k.Settings(), k.KeyStatus()
			if len(settings.InvalidFields()) > 0 {
				invalid++
			}
			ready := 0.0
			if meta.IsStatusConditionTrue(st.Conditions, ConditionReady) {
				ready = 1
			}
			ch <- prometheus.MustNewConstMetric(keyReadyDescs[kind.Kind], prometheus.GaugeValue, ready, k.GetNamespace(), k.GetName())
			if next := st.NextRotationAt; next != nil && settings.RotationInterval != nil {
				ch <- prometheus.MustNewConstMetric(nextRotationDescs[kind.Kind], prometheus.GaugeValue, secondsUntil(next, now), k.GetNamespace(), k.GetName())
			}
		}); err != nil {
			return // cache not started yet: no series rather than wrong ones
		}
		ch <- prometheus.MustNewConstMetric(invalidSpecDesc, prometheus.GaugeValue, float64(invalid), kind.Kind)
	}
}

func secondsUntil(t *metav1.Time, now time.Time) float64 {
	return t.Sub(now).Seconds()
}
