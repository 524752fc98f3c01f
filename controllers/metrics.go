package controllers

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
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
		Help: "Events the operator emitted on WorkspaceAPIKeys, by reason: KeyIssued, KeyRotated, KeyReissued, SecretConflict, PreviousKeyExpired, RevokedKeyPresented, …",
	}, []string{"reason"})
	keyReadyDesc = prometheus.NewDesc("octopods_workspaceapikey_ready",
		"1 when the WorkspaceAPIKey's key is issued and in its Secret (Ready=True), else 0.", []string{"namespace", "name"}, nil)
	nextRotationDesc = prometheus.NewDesc("octopods_workspaceapikey_next_rotation_seconds",
		"Seconds until spec.rotationInterval rotates the key (status.nextRotationAt); keys without a schedule have no series.", []string{"namespace", "name"}, nil)
	invalidSpecDesc = prometheus.NewDesc("octopods_operator_invalid_objects",
		"Objects whose spec the operator cannot read (condition InvalidSpec): nothing is done for them until they are fixed.", []string{"kind"}, nil)
	keysCollector = &keyStatusCollector{}
)

func init() {
	metrics.Registry.MustRegister(keyEvents, keysCollector)
}

// keyStatusCollector reports each WorkspaceAPIKey's readiness and next
// scheduled rotation from the running manager's cache.
type keyStatusCollector struct {
	reader atomic.Pointer[client.Reader]
	now    func() time.Time
}

// use makes the collector read from r (the manager's cache), replacing any
// earlier manager's in this process.
func (c *keyStatusCollector) use(r client.Reader, now func() time.Time) {
	c.now = now
	c.reader.Store(&r)
}

func (c *keyStatusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- keyReadyDesc
	ch <- nextRotationDesc
	ch <- invalidSpecDesc
}

func (c *keyStatusCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.reader.Load()
	if r == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var keys octopodsv1alpha1.WorkspaceAPIKeyList
	if err := (*r).List(ctx, &keys); err != nil {
		return // cache not started yet: no series rather than wrong ones
	}
	now := c.now()
	invalid := 0
	for i := range keys.Items {
		k := &keys.Items[i]
		if len(k.Spec.InvalidFields()) > 0 {
			invalid++
		}
		ready := 0.0
		if meta.IsStatusConditionTrue(k.Status.Conditions, ConditionReady) {
			ready = 1
		}
		ch <- prometheus.MustNewConstMetric(keyReadyDesc, prometheus.GaugeValue, ready, k.Namespace, k.Name)
		if next := k.Status.NextRotationAt; next != nil && k.Spec.RotationInterval != nil {
			ch <- prometheus.MustNewConstMetric(nextRotationDesc, prometheus.GaugeValue, secondsUntil(next, now), k.Namespace, k.Name)
		}
	}
	ch <- prometheus.MustNewConstMetric(invalidSpecDesc, prometheus.GaugeValue, float64(invalid), "WorkspaceAPIKey")
}

func secondsUntil(t *metav1.Time, now time.Time) float64 {
	return t.Sub(now).Seconds()
}
