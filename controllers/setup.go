package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/intern"
	"github.com/octopods/octopods-operator/internal/keysecret"
	"github.com/octopods/octopods-operator/internal/keystore"
	"github.com/octopods/octopods-operator/internal/pacedqueue"
	"github.com/octopods/octopods-operator/internal/packedcache"
)

// Options tune the controllers.
type Options struct {
	// MaxConcurrentReconciles per controller. Reconciles wait on the API
	// server, not the CPU, so a few run in parallel even on small nodes.
	MaxConcurrentReconciles int

	// wrapClient (tests only) wraps the key reconciler's client, e.g. with
	// controller-runtime's interceptor to crash the manager right after a
	// Secret write; the reconcilers know nothing of it.
	wrapClient func(client.Client) client.Client
	// SlicesBuiltNamespace is where the manager writes the marker that says
	// every namespace's KeyDigestSlices were built ("" writes none).
	SlicesBuiltNamespace string

	// sliceDelay (tests only) holds every batched slice write back this
	// long: the ordering test then sees a slice the key reconciler did not
	// withdraw from before its Secret write, instead of a race the batched
	// writer usually wins.
	sliceDelay time.Duration

	// now (tests only) is the key reconciler's clock: scheduled rotations
	// are tested with a fake one instead of waiting for hours.
	now func() time.Time
}

// CacheOptions restricts the manager's Secret cache to the Secrets it
// labels as its own (every key Secret of the three kinds carries
// app.kubernetes.io/managed-by=octopods-operator from its creation): the
// operator never holds other Secrets in memory, and any other Secret it
// must know about (a foreign one in the way, or a key Secret whose label
// was removed by hand, which the next write labels again) is read from the
// API server. A foreign Secret carrying the label is trimmed to its
// identity (TrimKeySecret).
func CacheOptions(health *CacheHealth) cache.Options {
	byObject := map[client.Object]cache.ByObject{}
	var packed []runtime.Object
	for _, o := range PackedObjects() {
		// Packed (NewInformer): each read decodes an object of its own
		// already, so a deep copy of it would only be waste.
		opts := cache.ByObject{UnsafeDisableDeepCopy: ptr.To(true)}
		if _, ok := o.(*corev1.Secret); ok {
			opts.Label = labels.SelectorFromSet(labels.Set{octopodsv1alpha1.ManagedByLabel: octopodsv1alpha1.ManagedByValue})
			opts.Transform = TrimKeySecret
		}
		byObject[o] = opts
		packed = append(packed, o)
	}
	return cache.Options{
		DefaultWatchErrorHandler: health.WatchErrorHandler,
		ByObject:                 byObject,
		DefaultTransform:         TrimCached,
		NewInformer:              packedcache.NewInformerFunc(packed...),
	}
}

// PackedObjects are the types the manager caches packed (internal/packedcache),
// after TrimCached or TrimKeySecret: those it holds one of per key and reads
// by name, the Workspaces, the key objects of every kind and the key
// Secrets. At 100,000 keys they are most of its memory; packed, each costs
// about a tenth. Channels and WhatsApp Business Accounts are not packed:
// the keys of a Workspace's channels are found by listing them at each
// Workspace event, which would decode every one of them each time.
func PackedObjects() []client.Object {
	objs := []client.Object{&corev1.Secret{}, &octopodsv1alpha1.Workspace{}}
	for _, k := range octopodsv1alpha1.KeyKinds {
		objs = append(objs, k.NewKey())
	}
	return objs
}

// CacheSyncTimeout is how long a controller waits for its caches on start
// before the manager gives up and exits. controller-runtime's default, two
// minutes, is short of a first list of 100,000 keys, their Workspaces and
// Secrets from a busy API server; exiting then only starts the list again.
const CacheSyncTimeout = 10 * time.Minute

// TrimCached drops from every cached Workspace and WorkspaceAPIKey what the
// manager never reads: managedFields (most of a small object), and kubectl's
// last-applied-configuration annotation (a second copy of the object for
// whoever uses kubectl apply or GitOps). Writing back a trimmed copy cannot
// remove them: every write to these objects is a merge patch computed
// against the cached copy, so what is absent from both is left alone.
//
// It also makes every cached object share one copy of the strings they all
// repeat (intern): kinds, finalizers, label and annotation keys, condition
// types, statuses and reasons.
func TrimCached(obj any) (any, error) {
	if o, ok := obj.(metav1.Object); ok {
		o.SetManagedFields(nil)
		delete(o.GetAnnotations(), corev1.LastAppliedConfigAnnotation)
		intern.Meta(o)
	}
	if t, err := meta.TypeAccessor(obj); err == nil {
		t.SetAPIVersion(intern.String(t.GetAPIVersion()))
		t.SetKind(intern.String(t.GetKind()))
	}
	switch o := obj.(type) {
	case *octopodsv1alpha1.Workspace:
		intern.Conditions(o.Status.Conditions)
	case *octopodsv1alpha1.Channel:
		intern.Conditions(o.Status.Conditions)
	case *octopodsv1alpha1.WhatsAppBusinessAccount:
		intern.Conditions(o.Status.Conditions)
	case octopodsv1alpha1.KeyObject:
		st := o.KeyStatus()
		intern.Conditions(st.Conditions)
		if st.Scope != nil {
			st.Scope.Type = intern.String(st.Scope.Type)
			st.Scope.ChannelType = octopodsv1alpha1.ChannelType(intern.String(string(st.Scope.ChannelType)))
		}
	}
	return obj, nil
}

// TrimKeySecret keeps of a key-type Secret only what the reconciler reads,
// so that anyone who may create Secrets cannot inflate the manager's memory
// with padded ones, and so that the manager holds no key: a Secret no key
// object controls keeps its identity and owner references only (enough to
// see a conflict); a key Secret keeps its metadata and its two keys, each
// sealed into its fingerprint (keysecret.Seal: whether it is a key, and
// its digest), never the key. The cached copy is never written back: every
// Secret write starts from a fresh read (see reconcileSecret), and the
// store refuses a sealed one.
func TrimKeySecret(obj any) (any, error) {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return obj, nil
	}
	s.ManagedFields = nil
	if keysecret.Sealed(s) {
		// Trimmed already: client-go may hand an object to the transform
		// twice, and a sealed value sealed again is no longer the key's.
		return s, nil
	}
	if octopodsv1alpha1.KeySecretController(s) == nil {
		s.Labels, s.Annotations, s.Data, s.StringData = nil, nil, nil, nil
		return s, nil
	}
	for k := range s.Data {
		if k != octopodsv1alpha1.SecretKeyAPIKey && k != octopodsv1alpha1.SecretKeyPreviousAPIKey {
			delete(s.Data, k)
		}
	}
	keysecret.Seal(s)
	return s, nil
}

// pacedQueue is controller-runtime's priority queue, with what a restart
// or a resync queues paced (internal/pacedqueue): after a restart over
// 100,000 keys the queue's maps would keep the room of every key queued at
// once.
func pacedQueue(logger logr.Logger) func(string, workqueue.TypedRateLimiter[reconcile.Request]) workqueue.TypedRateLimitingInterface[reconcile.Request] {
	return func(name string, limiter workqueue.TypedRateLimiter[reconcile.Request]) workqueue.TypedRateLimitingInterface[reconcile.Request] {
		queue := priorityqueue.New(name, func(o *priorityqueue.Opts[reconcile.Request]) {
			o.Log = logger.WithValues("controller", name)
			o.RateLimiter = limiter
		})
		backlog := reconcileBacklog.WithLabelValues(name)
		return pacedqueue.New(queue, func(n int) { backlog.Set(float64(n)) })
	}
}

// SetupSlices registers the KeyDigestSlice controller alone: the auth
// proxy's suite runs it to turn the statuses it writes into slices, as the
// manager does.
func SetupSlices(mgr ctrl.Manager, builtNamespace string) error {
	_, err := setupSlices(mgr, builtNamespace, time.Now)
	return err
}

func setupSlices(mgr ctrl.Manager, builtNamespace string, now func() time.Time) (*SliceReconciler, error) {
	slices := &SliceReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Informers: mgr.GetCache(), BuiltNamespace: builtNamespace, now: now}
	// Namespaces are synced in parallel; one namespace's syncs never are
	// (the work queue), so its changes still pile up into one write.
	if err := slices.SetupWithManager(mgr, controller.Options{MaxConcurrentReconciles: 4}); err != nil {
		return nil, fmt.Errorf("set up the KeyDigestSlice controller: %w", err)
	}
	return slices, nil
}

// Setup registers the controllers with the manager: the key and sighting
// reconcilers once per key kind, and the Workspace reconciler.
func Setup(mgr ctrl.Manager, opts Options) error {
	copts := controller.Options{MaxConcurrentReconciles: opts.MaxConcurrentReconciles, NewQueue: pacedQueue(mgr.GetLogger())}
	c := mgr.GetClient()
	if opts.wrapClient != nil {
		c = opts.wrapClient(c)
	}
	now := time.Now
	if opts.now != nil {
		now = opts.now
	}
	if err := keysCollector.use(context.Background(), mgr.GetCache(), now); err != nil {
		return err
	}
	slices, err := setupSlices(mgr, opts.SlicesBuiltNamespace, now)
	if err != nil {
		return err
	}
	slices.delay = opts.sliceDelay
	for _, kind := range octopodsv1alpha1.KeyKinds {
		keys := &KeyReconciler{
			Client:         keystore.Guard(c),
			kind:           kind,
			store:          keystore.Store{Writer: c},
			slices:         slices,
			APIReader:      mgr.GetAPIReader(),
			statusReporter: statusReporter{events: mgr.GetEventRecorder(strings.ToLower(kind.Kind) + "-controller")},
			now:            now,
		}
		if err := keys.SetupWithManager(mgr, copts); err != nil {
			return fmt.Errorf("set up the %s controller: %w", kind.Kind, err)
		}
		sightings := &SightingReconciler{
			Client:         mgr.GetClient(),
			kind:           kind,
			statusReporter: statusReporter{events: mgr.GetEventRecorder("revokedkeysighting-controller")},
			now:            now,
		}
		if err := sightings.SetupWithManager(mgr, copts); err != nil {
			return fmt.Errorf("set up the %s sighting controller: %w", kind.Kind, err)
		}
	}
	workspaces := &WorkspaceReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), now: time.Now}
	return workspaces.SetupWithManager(mgr, copts)
}
