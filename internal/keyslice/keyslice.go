// Package keyslice is the one translation between key objects and
// KeyDigestSlices, both ways, and the packing of a namespace's entries into
// slices. The manager turns a key object's status into a slice entry
// (Entry) and packs entries into slices (Pack); the auth proxy turns an
// entry into what its index keeps (Keys). Pure: no I/O.
package keyslice

import (
	"cmp"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/clientaddr"
	"github.com/octopods/octopods-operator/internal/keyindex"
)

// KeysPerSlice is how many key objects the manager puts in one
// KeyDigestSlice, chosen by measurement on both ends of the trade:
//   - a change rewrites its whole slice, and the API server's cost of that
//     write grows with it: one key changed in a slice of 50, 100, 200, 500
//     and 1000 keys was answered and watched in 13.7, 20.9, 32.2, 85.4 and
//     169 ms (make bench-slice-write, medians of 30, one run); with 500, a
//     key rotated in a full namespace of 500 was refused in 156 ms against
//     45 ms for the design before slices (restartbench);
//   - a proxy's first sync of 100k keys costs per object listed: 1.81 s
//     with 500 a slice, 1.81 s with 200 and 2.01 s with 100 (make
//     bench-sync, medians of 5, back to back), against 57.7 s for 100k key
//     objects.
//
// 200 costs a change 2.7 times less than 500 for the same first sync. A
// slice of 200 current keys is about 50 kB of JSON, far under etcd's
// 1.5 MiB request limit even with every entry's previous and revoked keys.
const KeysPerSlice = 200

// Ref names one key object of a namespace.
type Ref struct{ Kind, Name string }

// RefOf is the entry's key object.
func RefOf(e *octopodsv1alpha1.SlicedKey) Ref { return Ref{Kind: e.Kind, Name: e.Name} }

// Entry is what key publishes for the auth proxy, and false when it
// publishes nothing: a key object being deleted (its Secret is on its way
// out), a channel or WhatsApp key without a published scope of its own
// type (fail closed), or one with no digest yet. A workspace key's scope is its workspace, as before
// scopes were published. The previous key's validUntil is capped at
// rotatedAt + MaxPreviousKeyLifetime, so a slice never says more than the
// status allows.
func Entry(key octopodsv1alpha1.KeyObject) (octopodsv1alpha1.SlicedKey, bool) {
	kind, st := key.KeyKind(), key.KeyStatus()
	if key.GetDeletionTimestamp() != nil {
		return octopodsv1alpha1.SlicedKey{}, false
	}
	e := octopodsv1alpha1.SlicedKey{Kind: kind.Kind, Name: key.GetName(), Owner: key.OwnerName(),
		Scope: octopodsv1alpha1.KeyScope{Type: kind.KeyType, Workspace: key.OwnerName()}}
	switch sc := st.Scope; {
	case sc != nil && sc.Type == kind.KeyType:
		e.Scope = *sc.DeepCopy()
	case kind.KeyType != octopodsv1alpha1.KeyTypeWorkspace:
		return octopodsv1alpha1.SlicedKey{}, false
	}
	current := false
	for _, p := range st.PublishedKeys {
		switch {
		case p.ValidUntil == nil && !current:
			current = true
			e.PublishedKeys = append(e.PublishedKeys, octopodsv1alpha1.PublishedKey{KeyID: p.KeyID, Digest: p.Digest})
		case p.ValidUntil != nil && st.RotatedAt != nil && len(e.PublishedKeys) < 2:
			until := p.ValidUntil.Time
			if limit := st.RotatedAt.Add(octopodsv1alpha1.MaxPreviousKeyLifetime); limit.Before(until) {
				until = limit
			}
			e.PublishedKeys = append(e.PublishedKeys, octopodsv1alpha1.PublishedKey{KeyID: p.KeyID, Digest: p.Digest, ValidUntil: &metav1.Time{Time: until}})
		}
	}
	for _, r := range st.RevokedKeys {
		e.RevokedKeys = append(e.RevokedKeys, octopodsv1alpha1.RevokedDigest{KeyID: r.KeyID, Digest: r.Digest, RevokedAt: r.RevokedAt})
	}
	// An entry with no digest says nothing a proxy acts on: a key object
	// not yet issued costs no slice write.
	return e, len(e.PublishedKeys)+len(e.RevokedKeys) > 0
}

// maxRevoked bounds an entry's revoked digests: the status's five, and the
// two a withdrawal may add before the status says so.
const maxRevoked = octopodsv1alpha1.MaxRevokedKeys + 2

// Withdraw removes from e every published digest that held does not
// accept, and lists it as revoked at now (so the proxy answers 400, not
// 401, at once). It reports whether anything was removed.
func Withdraw(e *octopodsv1alpha1.SlicedKey, held func(digest string) bool, now time.Time) bool {
	kept := e.PublishedKeys[:0:0]
	var gone []octopodsv1alpha1.RevokedDigest
	for _, p := range e.PublishedKeys {
		if held(p.Digest) {
			kept = append(kept, p)
			continue
		}
		gone = append(gone, octopodsv1alpha1.RevokedDigest{KeyID: p.KeyID, Digest: p.Digest, RevokedAt: metav1.Time{Time: now}})
	}
	if len(gone) == 0 {
		return false
	}
	e.PublishedKeys = kept
	e.RevokedKeys = append(gone, e.RevokedKeys...)
	if len(e.RevokedKeys) > maxRevoked {
		e.RevokedKeys = e.RevokedKeys[:maxRevoked]
	}
	return true
}

// Without drops from e's published keys the digests in gone (withdrawn
// ones a stale read of the key's status may still show), listing them as
// revoked.
func Without(e *octopodsv1alpha1.SlicedKey, gone map[string]time.Time) {
	if len(gone) == 0 {
		return
	}
	kept := e.PublishedKeys[:0:0]
	for _, p := range e.PublishedKeys {
		at, withdrawn := gone[p.Digest]
		if !withdrawn {
			kept = append(kept, p)
			continue
		}
		if !slices.ContainsFunc(e.RevokedKeys, func(r octopodsv1alpha1.RevokedDigest) bool { return r.Digest == p.Digest }) {
			e.RevokedKeys = append([]octopodsv1alpha1.RevokedDigest{{KeyID: p.KeyID, Digest: p.Digest, RevokedAt: metav1.Time{Time: at}}}, e.RevokedKeys...)
		}
	}
	e.PublishedKeys = kept
	if len(e.RevokedKeys) > maxRevoked {
		e.RevokedKeys = e.RevokedKeys[:maxRevoked]
	}
}

// Keys is what the auth proxy's index keeps of an entry of a slice in
// namespace, at now: a previous key past its validUntil and revoked keys
// past their retention are left out, as are digests that do not parse.
func Keys(namespace string, e *octopodsv1alpha1.SlicedKey, now time.Time) keyindex.Keys {
	kind, _ := octopodsv1alpha1.KeyKindOf(e.Kind)
	out := keyindex.Keys{Namespace: namespace, Name: e.Name, Workspace: e.Scope.Workspace,
		Scope: keyindex.Scope{Type: kind.KeyType, ChannelType: string(e.Scope.ChannelType)}}
	if e.Scope.Type != kind.KeyType {
		return out // an entry the manager would not write: nothing is admitted
	}
	out.AllowedSourceRanges = clientaddr.Ranges(e.Scope.AllowedSourceRanges)
	if r := e.Scope.RateLimit; r != nil && r.RequestsPerSecond > 0 {
		out.RateLimit = keyindex.RateLimit{PerSecond: float64(r.RequestsPerSecond), Burst: int(r.EffectiveBurst())}
	}
	for _, r := range e.RevokedKeys {
		if d, err := apikey.ParseDigest(r.Digest); err == nil && now.Sub(r.RevokedAt.Time) < octopodsv1alpha1.RevokedKeyRetention {
			out.Revoked = append(out.Revoked, d)
		}
	}
	for _, p := range e.PublishedKeys {
		d, err := apikey.ParseDigest(p.Digest)
		switch {
		case err != nil:
		case p.ValidUntil == nil && !out.HasCurrent:
			out.Current, out.HasCurrent = d, true
		case p.ValidUntil != nil && !out.HasPrevious && p.ValidUntil.After(now):
			out.Previous, out.HasPrevious, out.PreviousValidUntil = d, true, p.ValidUntil.Time
		}
	}
	return out
}

// Withdrawn are the digests a withdrawal slice refuses, as the auth proxy's
// index keeps them (SetWithdrawn); digests that do not parse are left out.
func Withdrawn(slice *octopodsv1alpha1.KeyDigestSlice) []apikey.Digest {
	var out []apikey.Digest
	for _, w := range slice.WithdrawnKeys {
		if d, err := apikey.ParseDigest(w.Digest); err == nil {
			out = append(out, d)
		}
	}
	return out
}

// IsWithdrawal says whether a slice is a namespace's withdrawal slice.
func IsWithdrawal(slice metav1.Object) bool {
	return slice.GetLabels()[octopodsv1alpha1.SliceLabel] == octopodsv1alpha1.SliceRoleWithdrawn
}

// Slice is one KeyDigestSlice's name and entries, as Pack sees it.
type Slice struct {
	Name string
	Keys []octopodsv1alpha1.SlicedKey
}

// Packing is what Pack decided: slices to write (Name "" for a new one)
// and slices to delete.
type Packing struct {
	Write  []Slice
	Delete []string
}

// Pack fits the desired entries of a namespace into its existing slices,
// at most perSlice each, changing as few slices as it can, as the
// EndpointSlice controller does: an entry stays in the slice that holds it
// (so a proxy never sees a key leave one slice before it enters another),
// entries no longer desired leave, new entries go first to slices written
// anyway, then to the fullest slice with room, then to new slices. A slice
// left empty is deleted. An entry found in two slices (a create whose
// answer was lost) stays in the first by name, which is written after the
// other drops it: a proxy forgets what a slice drops, and learns it again.
//
// With changed not nil, only the entries it names are looked up in desired
// (present: written as desired; absent: removed): the others stay as the
// slices hold them, and a slice with none of them is not even compared.
// That is the manager's incremental pass, which costs what changed, not
// what the namespace holds.
func Pack(existing []Slice, desired map[Ref]octopodsv1alpha1.SlicedKey, changed map[Ref]bool, perSlice int) Packing {
	existing = slices.Clone(existing)
	slices.SortFunc(existing, func(a, b Slice) int { return cmp.Compare(a.Name, b.Name) })
	k := keepExisting(existing, desired, changed, perSlice)
	// Slices with room: those written anyway first, then the fullest quiet
	// ones (fewer slices, as the set stays).
	slices.SortStableFunc(k.quiet, func(a, b int) int { return cmp.Compare(len(existing[b].Keys), len(existing[a].Keys)) })
	var open []*Slice
	dirty := map[*Slice]bool{}
	for _, i := range k.written {
		dirty[&existing[i]] = true
	}
	for _, i := range append(k.written, k.quiet...) {
		open = append(open, &existing[i])
	}
	var fresh []*Slice
	for _, ref := range sortedRefs(desired) {
		if k.placed[ref] || changed != nil && !changed[ref] {
			continue
		}
		for len(open) > 0 && len(open[0].Keys) >= perSlice {
			open = open[1:]
		}
		if len(open) == 0 {
			s := &Slice{}
			fresh = append(fresh, s)
			open = append(open, s)
		}
		open[0].Keys = append(open[0].Keys, desired[ref])
		dirty[open[0]] = true
	}
	p := Packing{Delete: k.deleted}
	for i := range existing {
		if dirty[&existing[i]] && !k.keepers[i] {
			p.Write = append(p.Write, existing[i])
		}
	}
	for i := range existing {
		if k.keepers[i] && len(existing[i].Keys) > 0 {
			p.Write = append(p.Write, existing[i])
		}
	}
	for _, s := range fresh {
		p.Write = append(p.Write, *s)
	}
	return p
}

// kept is the first pass of Pack over the existing slices (sorted by
// name), by index: each keeps its entries still desired, updated.
type kept struct {
	placed  map[Ref]bool
	keepers map[int]bool // slices that kept an entry another one also held
	written []int        // changed
	quiet   []int        // unchanged
	deleted []string     // left empty
}

func keepExisting(existing []Slice, desired map[Ref]octopodsv1alpha1.SlicedKey, changed map[Ref]bool, perSlice int) kept {
	k := kept{placed: make(map[Ref]bool, len(desired)), keepers: map[int]bool{}}
	keeper := map[Ref]int{}
	for i := range existing {
		s := &existing[i]
		if changed != nil && !slices.ContainsFunc(s.Keys, func(e octopodsv1alpha1.SlicedKey) bool { return changed[RefOf(&e)] }) {
			k.quiet = append(k.quiet, i) // holds no changed entry: as it is
			continue
		}
		next := make([]octopodsv1alpha1.SlicedKey, 0, len(s.Keys))
		for _, e := range s.Keys {
			ref := RefOf(&e)
			want, ok := desired[ref]
			if changed != nil && !changed[ref] {
				want, ok = e, true // not looked up: as the slice holds it
			}
			if k.placed[ref] {
				k.keepers[keeper[ref]] = true
			}
			if !ok || k.placed[ref] || len(next) == perSlice {
				continue
			}
			k.placed[ref], keeper[ref] = true, i
			next = append(next, want)
		}
		changed := !equality.Semantic.DeepEqual(next, s.Keys) && (len(next) > 0 || len(s.Keys) > 0)
		s.Keys = next
		switch {
		case len(next) == 0:
			k.deleted = append(k.deleted, s.Name)
		case changed:
			k.written = append(k.written, i)
		default:
			k.quiet = append(k.quiet, i)
		}
	}
	return k
}

func sortedRefs(m map[Ref]octopodsv1alpha1.SlicedKey) []Ref {
	refs := make([]Ref, 0, len(m))
	for r := range m {
		refs = append(refs, r)
	}
	slices.SortFunc(refs, func(a, b Ref) int { return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name)) })
	return refs
}
