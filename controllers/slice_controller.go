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
// and it is refused before it leaves its Secret, because keystore.Store
// calls Withdraw, through the key reconciler, before every Secret write,
// and Withdraw returns only once the API server holds the namespace's
// withdrawal slice listing it (or, when that is full, the slice of keys
// without it). The proxies refuse what the withdrawal slice lists whatever
// the slices of keys say, and read both on one watch stream, so the digest
// is dropped from the withdrawal slice only after its slice of keys is
// rewritten without it (settleWithdrawals). A withdrawn digest is never
// put back from a stale read of a status (withdrawnMemory).
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
	// withdrawal is the namespace's withdrawal slice as the API server
	// holds it after this manager's last write.
	withdrawal withdrawalSlice
}

// withdrawalSlice is a namespace's withdrawal slice as held: its
// resourceVersion ("" before it exists) and its digests, each with the key
// object whose slice still publishes it.
type withdrawalSlice struct {
	resourceVersion string
	digests         []withdrawnDigest
}

type withdrawnDigest struct {
	octopodsv1alpha1.RevokedDigest
	ref keyslice.Ref
}

// holds says whether the withdrawal slice lists digest.
func (w *withdrawalSlice) holds(digest string) bool {
	return slices.ContainsFunc(w.digests, func(d withdrawnDigest) bool { return d.Digest == digest })
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
	settled, err := r.settleWithdrawals(ctx, ns, sp)
	sp.full = false // set again by the deferred check if err
	return wrote || settled, err
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
	if err := r.loadWithdrawal(ctx, ns, sp, list.Items); err != nil {
		return err
	}
	sp.loaded = true
	return nil
}

// loadWithdrawal reads the namespace's withdrawal slice, finds the key
// object whose slice publishes each of its digests among listed (the
// namespace's slices of keys), and keeps those digests out of every slice:
// a manager that restarts between a withdrawal and the rewrite of its
// slice of keys must not publish the digest again from a status written
// before the withdrawal.
func (r *SliceReconciler) loadWithdrawal(ctx context.Context, ns string, sp *sliceSpace, listed []octopodsv1alpha1.KeyDigestSlice) error {
	held := &octopodsv1alpha1.KeyDigestSlice{}
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: octopodsv1alpha1.SliceWithdrawnName}, held)
	if apierrors.IsNotFound(err) {
		sp.withdrawal = withdrawalSlice{}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read KeyDigestSlice %s/%s: %w", ns, octopodsv1alpha1.SliceWithdrawnName, err)
	}
	publisher := map[string]keyslice.Ref{}
	for i := range listed {
		for j := range listed[i].Keys {
			for _, p := range listed[i].Keys[j].PublishedKeys {
				publisher[p.Digest] = keyslice.RefOf(&listed[i].Keys[j])
			}
		}
	}
	sp.withdrawal = withdrawalSlice{resourceVersion: held.ResourceVersion}
	for _, d := range held.WithdrawnKeys {
		sp.withdrawal.digests = append(sp.withdrawal.digests, withdrawnDigest{RevokedDigest: d, ref: publisher[d.Digest]})
		if _, kept := sp.withdrawn[d.Digest]; !kept {
			sp.withdrawn[d.Digest] = d.RevokedAt.Time
		}
	}
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

// Withdraw refuses every published digest of the key object ref that held
// does not accept, gone (the digests its status just stopped publishing)
// among them, and returns once the API server holds the refusal. Those
// digests are kept out of every slice from now on (withdrawnMemory). It
// writes at once, whatever the batching.
//
// The refusal is written to the namespace's withdrawal slice, a small
// object the proxies check before admitting a key (withdrawAhead), not to
// the slice of keys that publishes the digest: a slice of 200 keys costs
// the API server several times more to write, and the proxies several
// times more to read, and a rotated key must be refused within
// milliseconds. The next sync rewrites that slice without the digest, then
// drops it from the withdrawal slice (settleWithdrawals).
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
		err := r.withdrawAhead(ctx, ns, sp, ref, held, now)
		if err == nil || attempt == 2 {
			return err
		}
	}
}

// withdrawAhead lists in the withdrawal slice every digest a slice of keys
// publishes for ref that held does not accept, and marks ref changed so
// the next sync rewrites its slice without them. A withdrawal slice
// that would overflow is not written: the slices of keys are, at once
// (withdrawFromEvery).
func (r *SliceReconciler) withdrawAhead(ctx context.Context, ns string, sp *sliceSpace, ref keyslice.Ref, held func(string) bool, now time.Time) error {
	next := sp.withdrawal.digests
	for _, s := range sp.slices {
		if !s.holds(ref) {
			continue
		}
		keys := s.keys()
		for i := range keys {
			if keyslice.RefOf(&keys[i]) != ref {
				continue
			}
			for _, p := range keys[i].PublishedKeys {
				if held(p.Digest) {
					continue
				}
				sp.withdrawn[p.Digest] = now
				if !sp.withdrawal.holds(p.Digest) {
					next = append(slices.Clip(next), withdrawnDigest{ref: ref, RevokedDigest: octopodsv1alpha1.RevokedDigest{
						KeyID: p.KeyID, Digest: p.Digest, RevokedAt: metav1.Time{Time: now}}})
				}
			}
		}
	}
	if len(next) == len(sp.withdrawal.digests) {
		return nil // nothing published that must go
	}
	sp.change(ref)
	if len(next) > octopodsv1alpha1.MaxWithdrawnKeys {
		return r.withdrawFromEvery(ctx, ns, sp, ref, held, now)
	}
	return r.writeWithdrawal(ctx, ns, sp, next)
}

// settleWithdrawals drops from the withdrawal slice the digests no slice
// of keys publishes any more (their slice was rewritten, or the key object
// left it), and those no longer withdrawn (Republished, or expired), and
// reports whether it wrote. Each slice is decoded once at most.
func (r *SliceReconciler) settleWithdrawals(ctx context.Context, ns string, sp *sliceSpace) (bool, error) {
	if len(sp.withdrawal.digests) == 0 {
		return false, nil
	}
	decoded := map[string][]octopodsv1alpha1.SlicedKey{}
	publishes := func(ref keyslice.Ref, digest string) bool {
		for name, s := range sp.slices {
			if !s.holds(ref) {
				continue
			}
			keys, ok := decoded[name]
			if !ok {
				keys = s.keys()
				decoded[name] = keys
			}
			for i := range keys {
				if keyslice.RefOf(&keys[i]) == ref && slices.ContainsFunc(keys[i].PublishedKeys, func(p octopodsv1alpha1.PublishedKey) bool { return p.Digest == digest }) {
					return true
				}
			}
		}
		return false
	}
	var kept []withdrawnDigest
	for _, d := range sp.withdrawal.digests {
		if _, withdrawn := sp.withdrawn[d.Digest]; withdrawn && publishes(d.ref, d.Digest) {
			kept = append(kept, d)
		}
	}
	if len(kept) == len(sp.withdrawal.digests) {
		return false, nil
	}
	return true, r.writeWithdrawal(ctx, ns, sp, kept)
}

// writeWithdrawal creates or updates the namespace's withdrawal slice with
// the resourceVersion last held; any failure makes the namespace be read
// again, as write does.
func (r *SliceReconciler) writeWithdrawal(ctx context.Context, ns string, sp *sliceSpace, digests []withdrawnDigest) error {
	obj := &octopodsv1alpha1.KeyDigestSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: octopodsv1alpha1.SliceWithdrawnName, Labels: map[string]string{
		octopodsv1alpha1.SliceLabel: octopodsv1alpha1.SliceRoleWithdrawn, octopodsv1alpha1.ManagedByLabel: octopodsv1alpha1.ManagedByValue}}}
	for _, d := range digests {
		obj.WithdrawnKeys = append(obj.WithdrawnKeys, d.RevokedDigest)
	}
	var err error
	if sp.withdrawal.resourceVersion == "" {
		err = r.Create(ctx, obj)
	} else {
		obj.ResourceVersion = sp.withdrawal.resourceVersion
		err = r.Update(ctx, obj)
	}
	if err != nil {
		sp.loaded = false
		return fmt.Errorf("write KeyDigestSlice %s/%s: %w", ns, octopodsv1alpha1.SliceWithdrawnName, err)
	}
	sp.withdrawal = withdrawalSlice{resourceVersion: obj.ResourceVersion, digests: digests}
	return nil
}

// withdrawFromEvery withdraws from every slice of keys of the model that
// holds the key object, not only the one it is indexed under: a copy in a
// second slice (a lost create) must not keep a dead key.
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

// Ahead returns the keys the slices publish, or are about to, for the key
// object ref ahead of its status (Publish): nil when none. A reconcile
// counts them as published, so that a status write that failed after the
// slices admitted a key (a person's edit in between) never leaves that key
// out of the next decision: a rotation with grace keeps it, and a
// revocation records it.
func (r *SliceReconciler) Ahead(ns string, ref keyslice.Ref) []octopodsv1alpha1.PublishedKey {
	sp := r.space(ns)
	sp.changedMu.Lock()
	defer sp.changedMu.Unlock()
	early, ahead := sp.early[ref]
	if !ahead {
		return nil
	}
	return early.entry.DeepCopy().PublishedKeys
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
		if role := o.GetLabels()[octopodsv1alpha1.SliceLabel]; role == octopodsv1alpha1.SliceRoleKeys || role == octopodsv1alpha1.SliceRoleWithdrawn {
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
