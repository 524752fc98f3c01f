package controllers

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/keysecret"
	"github.com/octopods/octopods-operator/internal/keyslice"
	"github.com/octopods/octopods-operator/internal/packedcache"
)

// sliceWrites and sliceWriteBurst pace the batched writes of one
// namespace's slices: a few changes after a quiet spell are written at once
// (a new key is admitted within milliseconds), and a burst of changes
// (10,000 keys issued at once) is written twice a second, each write
// carrying everything that changed meanwhile: 300 keys issued in 6 s make
// about 15 slice writes (0.05 per key; 2 creates and 12 updates with
// slices of 200 in the e2e suite), and a key waits 500 ms at most.
// Revocations never wait: they are withdrawn from their slice at once
// (Withdraw).
const (
	sliceWrites     = rate.Limit(2)
	sliceWriteBurst = 4
)

// earlyMemory is how long an entry written by Publish, ahead of its key's
// status write, is kept in the slices while the cache does not show a status
// publishing it yet: longer than any cache lag; a status write that keeps
// failing for that long leaves the key refused (fail closed) until a
// reconcile publishes it again.
const earlyMemory = time.Minute

// withdrawnMemory is how long a withdrawn digest is kept out of the slices
// whatever a key's cached status says: longer than any cache lag, so that
// a stale read of a status that still published the key never puts it back.
const withdrawnMemory = 10 * time.Minute

// +kubebuilder:rbac:groups=octopods.io,resources=keydigestslices,verbs=get;list;watch;create;update;delete

// SliceReconciler writes, per namespace, the KeyDigestSlices the auth
// proxies read: every key object's published and revoked digests and
// scope, batched, up to keyslice.KeysPerSlice a slice. It is the only writer of
// slices (an admission policy refuses every other), so it keeps what it
// wrote in memory (read once per namespace from the API server) and never
// decides on a cache that may miss its own last write.
//
// The ordering rule, across objects: a digest enters a slice only after
// its Secret holds it: once the key's status publishes it, or, for a key
// just issued or rotated, right after the Secret write that added it and
// before the status write (Publish);
// and it leaves every slice before it leaves its Secret, because
// keystore.Store calls Withdraw, through the key reconciler, before every
// Secret write, and Withdraw returns only once the API server holds the
// slice without it. A withdrawn digest is never put back from a stale read
// of a status (withdrawnMemory).
type SliceReconciler struct {
	client.Client
	// APIReader lists a namespace's slices from the API server.
	APIReader client.Reader
	// Informers are the manager's cache, read one key at a time (eachKey).
	Informers cache.Informers
	// BuiltNamespace is where the marker that says the slices were built
	// is written ("" writes none).
	BuiltNamespace string
	now            func() time.Time
	delay          time.Duration // Options.sliceDelay

	mu     sync.Mutex
	spaces map[string]*sliceSpace
}

// sliceSpace is one namespace's slices as the API server holds them after
// this manager's last write.
type sliceSpace struct {
	mu     sync.Mutex
	loaded bool
	slices map[string]*heldSlice
	// withdrawn digests are kept out of every slice until they expire.
	withdrawn map[string]time.Time
	// writes paces the batched writes (not Withdraw's).
	writes *rate.Limiter
	// deleting are slices this manager deletes: their delete events are
	// its own, not someone else's.
	deleting map[string]bool
	// full: the next sync reads every key object of the namespace (after a
	// load or a failed write); else it reads only the changed ones.
	full bool
	// changed are the key objects whose events came since the last sync
	// (under changedMu: the event handlers add to it while a sync runs).
	changedMu sync.Mutex
	changed   map[keyslice.Ref]bool
	// early are entries Publish wrote (or queued) before their key's status
	// says so, with when (under changedMu).
	early map[keyslice.Ref]earlyEntry
}

type earlyEntry struct {
	entry octopodsv1alpha1.SlicedKey
	at    time.Time
}

// publishEarly records e as the entry of its key object, ahead of the
// cache, and the key object as changed.
func (sp *sliceSpace) publishEarly(e octopodsv1alpha1.SlicedKey, at time.Time) {
	sp.changedMu.Lock()
	defer sp.changedMu.Unlock()
	if sp.early == nil {
		sp.early = map[keyslice.Ref]earlyEntry{}
	}
	if sp.changed == nil {
		sp.changed = map[keyslice.Ref]bool{}
	}
	ref := keyslice.RefOf(&e)
	sp.early[ref], sp.changed[ref] = earlyEntry{entry: e, at: at}, true
}

// forgetEarly drops the early entry of ref.
func (sp *sliceSpace) forgetEarly(ref keyslice.Ref) {
	sp.changedMu.Lock()
	defer sp.changedMu.Unlock()
	delete(sp.early, ref)
}

// entryOf is the entry a sync writes for the key object ref, whose cached
// state gives cached (ok false: none): the early entry while the cached
// status does not publish all it publishes yet, unless the key object is
// gone or being deleted, or the early entry expired.
func (sp *sliceSpace) entryOf(ref keyslice.Ref, cached octopodsv1alpha1.SlicedKey, ok, gone bool, now time.Time) (octopodsv1alpha1.SlicedKey, bool) {
	sp.changedMu.Lock()
	defer sp.changedMu.Unlock()
	early, has := sp.early[ref]
	if !has {
		return cached, ok
	}
	if gone || now.Sub(early.at) > earlyMemory || (ok && keysecret.PublishesAll(cached.PublishedKeys, early.entry.PublishedKeys)) {
		delete(sp.early, ref)
		return cached, ok
	}
	return early.entry, true
}

// change records an event of the key object ref.
func (sp *sliceSpace) change(ref keyslice.Ref) {
	sp.changedMu.Lock()
	defer sp.changedMu.Unlock()
	if sp.changed == nil {
		sp.changed = map[keyslice.Ref]bool{}
	}
	sp.changed[ref] = true
}

// takeChanged returns the changed key objects and forgets them.
func (sp *sliceSpace) takeChanged() map[keyslice.Ref]bool {
	sp.changedMu.Lock()
	defer sp.changedMu.Unlock()
	c := sp.changed
	sp.changed = nil
	if c == nil {
		c = map[keyslice.Ref]bool{}
	}
	return c
}

// heldSlice is one slice as the API server holds it after this manager's
// last write, packed: about 60 bytes an entry instead of 700 decoded (at
// 100,000 keys, 6 MB instead of 70). An incremental sync decodes only the
// slices it may write: those holding a changed entry (found by the hashes
// of their entries' refs, without decoding) and those with room.
type heldSlice struct {
	resourceVersion string
	size            int
	refs            []uint64 // sorted hashes of the entries' refs
	packed          *packedcache.Packed
}

// heldSlices packs the held slices: KeyDigestSlices holding their entries
// only, compressed against the first one packed.
var heldSlices = packedcache.NewCodec(&octopodsv1alpha1.KeyDigestSlice{})

// refSeed hashes refs for heldSlice.refs, in this process only.
var refSeed = maphash.MakeSeed()

func newHeldSlice(rv string, keys []octopodsv1alpha1.SlicedKey) (*heldSlice, error) {
	packed, err := heldSlices.Pack(&octopodsv1alpha1.KeyDigestSlice{Keys: keys})
	if err != nil {
		return nil, err
	}
	h := &heldSlice{resourceVersion: rv, size: len(keys), packed: packed, refs: make([]uint64, len(keys))}
	for i := range keys {
		h.refs[i] = maphash.Comparable(refSeed, keyslice.RefOf(&keys[i]))
	}
	slices.Sort(h.refs)
	return h, nil
}

// keys decodes the slice's entries: a copy of the caller's own.
func (h *heldSlice) keys() []octopodsv1alpha1.SlicedKey {
	return h.packed.Unpack().(*octopodsv1alpha1.KeyDigestSlice).Keys
}

// holds says whether the slice may hold an entry of ref (a hash collision
// says yes; decoding tells).
func (h *heldSlice) holds(ref keyslice.Ref) bool {
	_, found := slices.BinarySearch(h.refs, maphash.Comparable(refSeed, ref))
	return found
}

// holdsAny says whether the slice may hold an entry of any of refs.
func (h *heldSlice) holdsAny(refs map[keyslice.Ref]bool) bool {
	for ref := range refs {
		if h.holds(ref) {
			return true
		}
	}
	return false
}

func (r *SliceReconciler) space(ns string) *sliceSpace {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.spaces == nil {
		r.spaces = map[string]*sliceSpace{}
	}
	s := r.spaces[ns]
	if s == nil {
		s = &sliceSpace{withdrawn: map[string]time.Time{}, deleting: map[string]bool{}, writes: rate.NewLimiter(sliceWrites, sliceWriteBurst), full: true}
		r.spaces[ns] = s
	}
	return s
}

// Reconcile rewrites one namespace's slices (the request's Namespace) from
// its key objects as cached.
func (r *SliceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	time.Sleep(r.delay)
	sp := r.space(req.Namespace)
	sp.mu.Lock()
	defer sp.mu.Unlock()
	wait, err := r.syncPaced(ctx, req.Namespace, sp)
	if err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: wait}, nil
}

// syncPaced syncs the namespace if its pacing allows a write now, and
// otherwise says how long to wait; sp is locked.
func (r *SliceReconciler) syncPaced(ctx context.Context, ns string, sp *sliceSpace) (time.Duration, error) {
	if tokens := sp.writes.Tokens(); tokens < 1 {
		return time.Duration((1 - tokens) / float64(sliceWrites) * float64(time.Second)), nil
	}
	wrote, err := r.sync(ctx, ns, sp)
	if wrote {
		sp.writes.Allow()
	}
	return 0, err
}

// sync writes what Pack decides for the namespace, and says whether it
// wrote anything; sp is locked. It reads only the key objects changed
// since the last sync, unless the namespace must be read in full (a first
// sync, a reload, a failed write): a change in a namespace of 100,000 keys
// costs one key's work.
func (r *SliceReconciler) sync(ctx context.Context, ns string, sp *sliceSpace) (wrote bool, err error) {
	changed := sp.takeChanged()
	defer func() {
		if err != nil {
			sp.full = true // what was taken is read again, with the rest
		}
	}()
	if err := r.load(ctx, ns, sp); err != nil {
		return false, err
	}
	if sp.full {
		changed = nil
	}
	desired, err := r.desired(ctx, ns, sp, changed)
	if err != nil {
		return false, err
	}
	current := make([]keyslice.Slice, 0, len(sp.slices))
	for name, s := range sp.slices {
		if changed != nil && s.size >= keyslice.KeysPerSlice && !s.holdsAny(changed) {
			// Full and holding no changed entry: Pack would neither
			// compare nor write it, so it is not decoded.
			continue
		}
		current = append(current, keyslice.Slice{Name: name, Keys: s.keys()})
	}
	packing := keyslice.Pack(current, desired, changed, keyslice.KeysPerSlice)
	wrote = len(packing.Write)+len(packing.Delete) > 0
	for _, s := range packing.Write {
		if err := r.write(ctx, ns, sp, s); err != nil {
			return wrote, err
		}
	}
	for _, name := range packing.Delete {
		if err := r.delete(ctx, ns, sp, name); err != nil {
			return wrote, err
		}
	}
	sp.full = false
	return wrote, nil
}

// desired are the entries of the namespace's key objects as cached (of
// those changed only, unless changed is nil), without the digests
// withdrawn lately.
func (r *SliceReconciler) desired(ctx context.Context, ns string, sp *sliceSpace, changed map[keyslice.Ref]bool) (map[keyslice.Ref]octopodsv1alpha1.SlicedKey, error) {
	now := r.now()
	for d, at := range sp.withdrawn {
		if now.Sub(at) > withdrawnMemory {
			delete(sp.withdrawn, d)
		}
	}
	desired := map[keyslice.Ref]octopodsv1alpha1.SlicedKey{}
	add := func(key octopodsv1alpha1.KeyObject) {
		cached, ok := keyslice.Entry(key)
		ref := keyslice.Ref{Kind: key.KeyKind().Kind, Name: key.GetName()}
		if e, ok := sp.entryOf(ref, cached, ok, key.GetDeletionTimestamp() != nil, now); ok {
			keyslice.Without(&e, sp.withdrawn)
			desired[ref] = e
		}
	}
	if changed != nil {
		for ref := range changed {
			kind, _ := octopodsv1alpha1.KeyKindOf(ref.Kind)
			key := kind.NewKey()
			if err := r.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, key); err != nil {
				if apierrors.IsNotFound(err) {
					sp.forgetEarly(ref)
					continue // gone: it leaves its slice
				}
				return nil, fmt.Errorf("read %s %s/%s: %w", ref.Kind, ns, ref.Name, err)
			}
			add(key)
		}
		return desired, nil
	}
	for _, kind := range octopodsv1alpha1.KeyKinds {
		if err := eachKey(ctx, r.Informers, kind, ns, add); err != nil {
			return nil, err
		}
	}
	return desired, nil
}

// load reads the namespace's slices from the API server once (and again
// after a write found them changed behind this manager's back).
func (r *SliceReconciler) load(ctx context.Context, ns string, sp *sliceSpace) error {
	if sp.loaded {
		return nil
	}
	list := &octopodsv1alpha1.KeyDigestSliceList{}
	if err := r.APIReader.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{octopodsv1alpha1.SliceLabel: octopodsv1alpha1.SliceRoleKeys}); err != nil {
		return fmt.Errorf("list the KeyDigestSlices of %s: %w", ns, err)
	}
	sp.slices, sp.full = map[string]*heldSlice{}, true
	for i := range list.Items {
		s := &list.Items[i]
		if err := sp.hold(s.Name, s.ResourceVersion, s.Keys); err != nil {
			return err
		}
	}
	sp.loaded = true
	return nil
}

// hold records a slice as the API server now holds it.
func (sp *sliceSpace) hold(name, rv string, keys []octopodsv1alpha1.SlicedKey) error {
	h, err := newHeldSlice(rv, keys)
	if err != nil {
		return fmt.Errorf("hold KeyDigestSlice %s: %w", name, err)
	}
	sp.slices[name] = h
	return nil
}

// write creates (s.Name "") or updates one slice with the resourceVersion
// last held: a slice changed by anyone else makes it fail, and the
// namespace is read again before the retry.
func (r *SliceReconciler) write(ctx context.Context, ns string, sp *sliceSpace, s keyslice.Slice) error {
	obj := &octopodsv1alpha1.KeyDigestSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: s.Name, Labels: map[string]string{
			octopodsv1alpha1.SliceLabel: octopodsv1alpha1.SliceRoleKeys, octopodsv1alpha1.ManagedByLabel: octopodsv1alpha1.ManagedByValue}},
		Keys: s.Keys,
	}
	var err error
	if s.Name == "" {
		obj.GenerateName = "keys-"
		err = r.Create(ctx, obj)
	} else {
		obj.ResourceVersion = sp.slices[s.Name].resourceVersion
		err = r.Update(ctx, obj)
	}
	if err != nil {
		// Whatever failed, the API server may hold a write this manager
		// does not know of (a create whose answer was lost): read again.
		sp.loaded = false
		return fmt.Errorf("write KeyDigestSlice %s/%s: %w", ns, s.Name, err)
	}
	if err := sp.hold(obj.Name, obj.ResourceVersion, s.Keys); err != nil {
		sp.loaded = false // read again rather than hold a wrong model
		return err
	}
	return nil
}

func (r *SliceReconciler) delete(ctx context.Context, ns string, sp *sliceSpace, name string) error {
	rv := sp.slices[name].resourceVersion
	sp.deleting[name] = true
	obj := &octopodsv1alpha1.KeyDigestSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	err := r.Delete(ctx, obj, client.Preconditions{ResourceVersion: &rv})
	if err != nil && !apierrors.IsNotFound(err) {
		sp.loaded = false
		return fmt.Errorf("delete KeyDigestSlice %s/%s: %w", ns, name, err)
	}
	delete(sp.slices, name)
	return nil
}

// Withdraw removes from the slice that holds the key object (kind, name)
// every published digest held does not accept, gone (the digests its
// status just stopped publishing) among them, and returns once the API
// server holds that slice. Those digests are kept out of every slice from
// now on (withdrawnMemory). It writes at once, whatever the batching.
func (r *SliceReconciler) Withdraw(ctx context.Context, ns string, ref keyslice.Ref, held func(digest string) bool, gone []string) error {
	sp := r.space(ns)
	sp.mu.Lock()
	defer sp.mu.Unlock()
	now := r.now()
	for _, d := range gone {
		sp.withdrawn[d] = now
	}
	sp.forgetEarly(ref) // what follows the Secret write is published anew
	for attempt := 0; ; attempt++ {
		if err := r.load(ctx, ns, sp); err != nil {
			return err
		}
		err := r.withdrawFromEvery(ctx, ns, sp, ref, held, now)
		if err == nil || attempt == 2 {
			return err
		}
	}
}

// withdrawFromEvery withdraws from every slice of the model that holds the
// key object, not only the one it is indexed under: a copy in a second
// slice (a lost create) must not keep a dead key.
func (r *SliceReconciler) withdrawFromEvery(ctx context.Context, ns string, sp *sliceSpace, ref keyslice.Ref, held func(string) bool, now time.Time) error {
	names := make([]string, 0, 1)
	for name, s := range sp.slices {
		if s.holds(ref) {
			names = append(names, name)
		}
	}
	for _, name := range names {
		keys := sp.slices[name].keys()
		changed := false
		for i := range keys {
			if keyslice.RefOf(&keys[i]) != ref {
				continue
			}
			e := *keys[i].DeepCopy()
			for _, p := range e.PublishedKeys {
				if !held(p.Digest) {
					sp.withdrawn[p.Digest] = now
				}
			}
			if keyslice.Withdraw(&e, held, now) {
				keys[i], changed = e, true
			}
		}
		if !changed {
			continue
		}
		if err := r.write(ctx, ns, sp, keyslice.Slice{Name: name, Keys: keys}); err != nil {
			return err
		}
	}
	return nil
}

// Publish writes the entry of key into its namespace's slices at once,
// when the batching allows a write now, else in the next batched sync. It
// is called with the status a key reconcile computed from a Secret write
// that succeeded, before that status is written: the Secret holds every
// digest it publishes, so the ordering rule holds, and a new key is
// admitted one status write and one watch delivery sooner. Until the cache
// shows a status that publishes the entry, syncs keep it (earlyMemory);
// Withdraw drops it before any later Secret write.
func (r *SliceReconciler) Publish(ctx context.Context, key octopodsv1alpha1.KeyObject) error {
	e, ok := keyslice.Entry(key)
	if !ok {
		return nil
	}
	sp := r.space(key.GetNamespace())
	sp.publishEarly(e, r.now())
	if sp.writes.Tokens() < 1 {
		return nil // a burst: the sync its status write brings batches it
	}
	time.Sleep(r.delay)
	sp.mu.Lock()
	defer sp.mu.Unlock()
	_, err := r.syncPaced(ctx, key.GetNamespace(), sp)
	return err
}

// Ahead reports whether the slices hold, or are about to hold, an entry of
// the key object ref ahead of its status (Publish).
func (r *SliceReconciler) Ahead(ns string, ref keyslice.Ref) bool {
	sp := r.space(ns)
	sp.changedMu.Lock()
	defer sp.changedMu.Unlock()
	_, ahead := sp.early[ref]
	return ahead
}

// Republished forgets the withdrawal of digests a key's status publishes
// again (written from a fresh read of its Secret, which holds them): a key
// unpublished before a Secret write that failed, and kept.
func (r *SliceReconciler) Republished(ns string, published []octopodsv1alpha1.PublishedKey) {
	sp := r.space(ns)
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for _, p := range published {
		delete(sp.withdrawn, p.Digest)
	}
}

// BuildAll writes every namespace's slices once, then the marker that says
// so: a proxy of a release with slices reports ready only after it, so an
// upgrade from a release without slices refuses no key.
func (r *SliceReconciler) BuildAll(ctx context.Context) error {
	namespaces := map[string]bool{}
	for _, kind := range octopodsv1alpha1.KeyKinds {
		inf, err := r.Informers.GetInformer(ctx, kind.NewKey())
		if err != nil {
			return fmt.Errorf("get the %s informer: %w", kind.Resource, err)
		}
		held, err := packedcache.Namespaces(inf) // nothing decoded
		if err != nil {
			return fmt.Errorf("read the namespaces of %s: %w", kind.Resource, err)
		}
		for _, ns := range held {
			namespaces[ns] = true
		}
	}
	held := &metav1.PartialObjectMetadataList{}
	held.SetGroupVersionKind(octopodsv1alpha1.GroupVersion.WithKind("KeyDigestSliceList"))
	if err := r.List(ctx, held, client.MatchingLabels{octopodsv1alpha1.SliceLabel: octopodsv1alpha1.SliceRoleKeys}); err != nil {
		return fmt.Errorf("list KeyDigestSlices: %w", err)
	}
	for _, s := range held.Items {
		namespaces[s.Namespace] = true
	}
	for ns := range namespaces {
		sp := r.space(ns)
		sp.mu.Lock()
		sp.full = true
		_, err := r.sync(ctx, ns, sp)
		sp.mu.Unlock()
		if err != nil {
			return err
		}
	}
	if r.BuiltNamespace != "" {
		if err := r.markBuilt(ctx); err != nil {
			return err
		}
	}
	slicesBuilt.Set(1)
	log.FromContext(ctx).Info("built the key digest slices of every namespace", "namespaces", len(namespaces))
	return nil
}

// markBuilt creates the marker once: it says the slices were built at least
// once, which is all a new proxy needs to know; a restart writes nothing.
func (r *SliceReconciler) markBuilt(ctx context.Context) error {
	marker := &octopodsv1alpha1.KeyDigestSlice{ObjectMeta: metav1.ObjectMeta{
		Namespace: r.BuiltNamespace, Name: octopodsv1alpha1.SlicesBuiltName,
		Labels:      map[string]string{octopodsv1alpha1.SliceLabel: octopodsv1alpha1.SliceRoleBuilt, octopodsv1alpha1.ManagedByLabel: octopodsv1alpha1.ManagedByValue},
		Annotations: map[string]string{octopodsv1alpha1.SlicesBuiltAtAnnotation: r.now().UTC().Format(time.RFC3339)},
	}}
	if err := r.Create(ctx, marker); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("write the marker KeyDigestSlice %s/%s: %w", r.BuiltNamespace, octopodsv1alpha1.SlicesBuiltName, err)
	}
	return nil
}

// SetupWithManager watches the key objects of every kind and the slices'
// metadata; a request is a namespace. The first build runs once the
// manager leads (BuildAll).
func (r *SliceReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	b := ctrl.NewControllerManagedBy(mgr).Named("keydigestslice").
		WatchesMetadata(&octopodsv1alpha1.KeyDigestSlice{}, r.sliceEvents())
	for _, kind := range octopodsv1alpha1.KeyKinds {
		b = b.Watches(kind.NewKey(), r.keyEvents(kind), builder.WithPredicates(entryChanges))
	}
	if err := b.WithOptions(opts).Complete(r); err != nil {
		return err
	}
	return mgr.Add(buildRunnable(func(ctx context.Context) error {
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("the cache did not sync")
		}
		for {
			err := r.BuildAll(ctx)
			if err == nil || ctx.Err() != nil {
				return nil
			}
			log.FromContext(ctx).Error(err, "build the key digest slices; retrying")
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
		}
	}))
}

// buildRunnable runs once the manager leads.
type buildRunnable func(ctx context.Context) error

func (f buildRunnable) Start(ctx context.Context) error { return f(ctx) }
func (buildRunnable) NeedLeaderElection() bool          { return true }

// keyEvents records the key object of an event as changed and enqueues
// its namespace: a burst of changes in a namespace is one request, and its
// sync reads only the objects changed.
func (r *SliceReconciler) keyEvents(kind octopodsv1alpha1.KeyKind) handler.EventHandler {
	changed := func(q workqueue.TypedRateLimitingInterface[reconcile.Request], o client.Object) {
		r.space(o.GetNamespace()).change(keyslice.Ref{Kind: kind.Kind, Name: o.GetName()})
		q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace()}})
	}
	type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]
	return handler.Funcs{
		CreateFunc:  func(_ context.Context, e event.CreateEvent, q queue) { changed(q, e.Object) },
		UpdateFunc:  func(_ context.Context, e event.UpdateEvent, q queue) { changed(q, e.ObjectNew) },
		DeleteFunc:  func(_ context.Context, e event.DeleteEvent, q queue) { changed(q, e.Object) },
		GenericFunc: func(_ context.Context, e event.GenericEvent, q queue) { changed(q, e.Object) },
	}
}

// sliceEvents enqueues a slice's namespace; a slice deleted by anyone but
// this manager makes it read the namespace's slices again.
func (r *SliceReconciler) sliceEvents() handler.EventHandler {
	enqueue := func(q workqueue.TypedRateLimitingInterface[reconcile.Request], o client.Object) {
		if o.GetLabels()[octopodsv1alpha1.SliceLabel] == octopodsv1alpha1.SliceRoleKeys {
			q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace()}})
		}
	}
	return handler.Funcs{
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			sp := r.space(e.Object.GetNamespace())
			sp.mu.Lock()
			if !sp.deleting[e.Object.GetName()] {
				sp.loaded = false
			}
			delete(sp.deleting, e.Object.GetName())
			sp.mu.Unlock()
			enqueue(q, e.Object)
		},
	}
}

// entryChanges passes the key events that change what a slice says of
// the key: not the usage writes of the proxies, most updates.
var entryChanges = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		before, ok1 := e.ObjectOld.(octopodsv1alpha1.KeyObject)
		after, ok2 := e.ObjectNew.(octopodsv1alpha1.KeyObject)
		if !ok1 || !ok2 {
			return true
		}
		b, bok := keyslice.Entry(before)
		a, aok := keyslice.Entry(after)
		return aok != bok || !equality.Semantic.DeepEqual(a, b)
	},
}

// eachKey calls fn with every cached key object of kind in ns ("": every
// namespace), each decoded only for its call (packedcache.Each): the
// cache's List would hold all of them decoded at once, 200 MB for a
// namespace of 100,000 keys. fn must not keep or change what it is given.
func eachKey(ctx context.Context, informers cache.Informers, kind octopodsv1alpha1.KeyKind, ns string, fn func(octopodsv1alpha1.KeyObject)) error {
	inf, err := informers.GetInformer(ctx, kind.NewKey())
	if err != nil {
		return fmt.Errorf("get the %s informer: %w", kind.Resource, err)
	}
	if !inf.HasSynced() {
		return fmt.Errorf("the cache of %s is not synced yet", kind.Resource) // the manager's cache is not started
	}
	if err := packedcache.Each(inf, ns, func(o runtime.Object) error {
		if k, ok := o.(octopodsv1alpha1.KeyObject); ok {
			fn(k)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("read the cached %s: %w", kind.Resource, err)
	}
	return nil
}
