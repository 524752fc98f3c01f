package controllers

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/packedcache"
)

// The manager's domain metrics, as cert-manager has for certificates, on
// controller-runtime's /metrics beside its own. Per-key series are made at
// scrape time (keyStatusCollector): one series per key, gone with the key.
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
	// reconcileBacklog is what workqueue_depth no longer shows after a
	// restart (pacedqueue): the objects still to reconcile once.
	reconcileBacklog = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "octopods_operator_reconcile_backlog",
		Help: "Objects a controller still has to reconcile because it started or resynced, held back from its work queue (workqueue_depth) until the queue drains.",
	}, []string{"controller"})
)

func init() {
	metrics.Registry.MustRegister(keyEvents, keysCollector, slicesBuilt, reconcileBacklog)
}

// keyStatusCollector reports each key's readiness and next scheduled
// rotation, and the keys whose spec cannot be read. A scrape decodes no
// cached key (the cache keeps keys packed: decoding 100,000 at every scrape
// would cost seconds of CPU) and the collector holds nothing for a key in
// the usual state, ready and without a schedule (a figure a key would cost
// about 100 bytes at 100,000 keys): the key informers' event handlers
// record only the exceptions, and a scrape walks the informers' keys.
type keyStatusCollector struct {
	states atomic.Pointer[keyStates]
	now    func() time.Time
}

// keyStates are one manager's exceptions, by kind and "namespace/name".
type keyStates struct {
	mu         sync.RWMutex
	exceptions map[string]map[string]keyState
	informers  map[string]cache.Informer
	synced     []func() bool // the event handlers have seen every cached key
}

type keyState struct {
	ready, invalid bool
	nextRotation   int64 // Unix seconds; 0: no schedule
}

// usual is the state of most keys, which the collector does not hold.
var usual = keyState{ready: true}

// use makes the collector report the keys of the manager's cache, replacing
// any earlier manager's in this process.
func (c *keyStatusCollector) use(ctx context.Context, informers cache.Informers, now func() time.Time) error {
	s := &keyStates{exceptions: map[string]map[string]keyState{}, informers: map[string]cache.Informer{}}
	for _, kind := range octopodsv1alpha1.KeyKinds {
		s.exceptions[kind.Kind] = map[string]keyState{}
		inf, err := informers.GetInformer(ctx, kind.NewKey())
		if err != nil {
			return fmt.Errorf("get the %s informer for metrics: %w", kind.Resource, err)
		}
		reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { s.set(kind, obj) },
			UpdateFunc: func(_, obj any) { s.set(kind, obj) },
			DeleteFunc: func(obj any) { s.forget(kind, obj) },
		})
		if err != nil {
			return fmt.Errorf("watch %s for metrics: %w", kind.Resource, err)
		}
		s.informers[kind.Kind] = inf
		s.synced = append(s.synced, reg.HasSynced)
	}
	c.now = now
	c.states.Store(s)
	return nil
}

func (s *keyStates) set(kind octopodsv1alpha1.KeyKind, obj any) {
	k, ok := obj.(octopodsv1alpha1.KeyObject)
	if !ok {
		return
	}
	settings, st := k.Settings(), k.KeyStatus()
	state := keyState{invalid: len(settings.InvalidFields()) > 0, ready: meta.IsStatusConditionTrue(st.Conditions, ConditionReady)}
	if st.NextRotationAt != nil && settings.RotationInterval != nil {
		state.nextRotation = st.NextRotationAt.Unix()
	}
	key := k.GetNamespace() + "/" + k.GetName()
	s.mu.Lock()
	defer s.mu.Unlock()
	if state == usual {
		delete(s.exceptions[kind.Kind], key)
		return
	}
	s.exceptions[kind.Kind][key] = state
}

func (s *keyStates) forget(kind octopodsv1alpha1.KeyKind, obj any) {
	key, err := toolscache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.exceptions[kind.Kind], key)
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
	s := c.states.Load()
	if s == nil {
		return
	}
	for _, synced := range s.synced {
		if !synced() {
			return // cache not synced yet: no series rather than wrong ones
		}
	}
	now := c.now()
	for _, kind := range octopodsv1alpha1.KeyKinds {
		keys, err := packedcache.Keys(s.informers[kind.Kind]) // nothing decoded
		if err != nil {
			return
		}
		invalid := 0
		s.mu.RLock()
		exceptions := maps.Clone(s.exceptions[kind.Kind]) // few; the handlers need not wait for the scrape
		s.mu.RUnlock()
		for _, key := range keys {
			state, exceptional := exceptions[key]
			if !exceptional {
				state = usual
			}
			if state.invalid {
				invalid++
			}
			ready := 0.0
			if state.ready {
				ready = 1
			}
			ns, name, _ := strings.Cut(key, "/")
			ch <- prometheus.MustNewConstMetric(keyReadyDescs[kind.Kind], prometheus.GaugeValue, ready, ns, name)
			if state.nextRotation != 0 {
				ch <- prometheus.MustNewConstMetric(nextRotationDescs[kind.Kind], prometheus.GaugeValue, time.Unix(state.nextRotation, 0).Sub(now).Seconds(), ns, name)
			}
		}
		ch <- prometheus.MustNewConstMetric(invalidSpecDesc, prometheus.GaugeValue, float64(invalid), kind.Kind)
	}
}
