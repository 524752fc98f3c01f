// Package keyindex is the auth proxy's in-memory view of the published keys:
// SHA-256 digests of the keys, never the keys, mapped to the workspace they
// unlock. Lookups do not allocate.
package keyindex

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/clientaddr"
)

// Identity is who a key authenticates: safe to log and forward.
type Identity struct {
	Namespace string
	Workspace string
	KeyID     string
	// Name is the key object's name, of the kind Type says: for a channel
	// key its channel's name, for a WhatsApp key its account's (a key is
	// named after its owner).
	Name string
	// Type is workspace, channel or whatsapp; ChannelType a channel key's
	// SMS, VBM or Telegram. Both are the package's constants, never heap
	// strings: the decision compares them on every request, and a constant
	// is always in cache.
	Type, ChannelType string
}

// Channel is a channel key's channel ("" for other types).
func (i Identity) Channel() string {
	if i.Type == TypeChannel {
		return i.Name
	}
	return ""
}

// WhatsAppBusinessAccount is a WhatsApp key's account ("" for other types).
func (i Identity) WhatsAppBusinessAccount() string {
	if i.Type == TypeWhatsApp {
		return i.Name
	}
	return ""
}

// The key types; a Keys set without one is a workspace key.
const (
	TypeWorkspace = "workspace"
	TypeChannel   = "channel"
	TypeWhatsApp  = "whatsapp"
)

// interned returns the constant equal to s among consts (s itself if none:
// a value the decision then admits nowhere it matters).
func interned(s string, consts ...string) string {
	for _, c := range consts {
		if s == c {
			return c
		}
	}
	return s
}

// Scope is what a key unlocks, as the operator published it.
type Scope struct {
	// Type is the key type: workspace, channel or whatsapp; ChannelType a
	// channel key's SMS, VBM or Telegram.
	Type, ChannelType string
}

// Keys is what the index keeps of one key object: the digests it
// publishes. Name is the key object's name.
type Keys struct {
	Namespace, Name string
	Workspace       string
	Scope
	Current     apikey.Digest
	HasCurrent  bool
	Previous    apikey.Digest
	HasPrevious bool
	// PreviousValidUntil bounds Previous; a previous key without it is refused.
	PreviousValidUntil time.Time
	// Revoked keys are refused like unknown ones, but their use is reported.
	Revoked []apikey.Digest
	// RateLimit is spec.rateLimit as published (zero: none).
	RateLimit RateLimit
	// AllowedSourceRanges, when not nil, are the only client addresses the
	// keys are admitted from (spec.allowedSourceRanges, as published).
	AllowedSourceRanges []netip.Prefix
	// LastUsed is the current key's last use already recorded
	// (status.lastUsedTime, by any replica): not written again until it is
	// older than the refresh interval (PendingAt).
	LastUsed time.Time
}

// shortDigest keys the lookup map: half a SHA-256 cannot collide by accident
// among any realistic number of keys, and every hit is confirmed against the
// full digest anyway.
type shortDigest [16]byte

func short(d *apikey.Digest) shortDigest { return shortDigest(d[:16]) }

// entry is what the index holds of one key object (a WorkspaceAPIKey's
// published keys), kept small: 100k of them must fit
// the proxy's memory budget. Its fields change only under the write lock;
// the counters are atomics written on the request path.
//
// What a lookup of the current key reads comes first and together (the
// digest, the use time and counter, then the identity), so that at 100k
// entries, where each lookup misses the cache, it touches as few lines as
// it can.
type entry struct {
	current    apikey.Digest
	hasCurrent bool
	gen        uint32
	// Last use of the current key, in whole seconds: the request path
	// writes the shared word at most once a second, so concurrent requests
	// with one key do not fight over it.
	lastUsed atomic.Int64
	// Admitted requests per key, so a counter per key ID only ever grows;
	// retired holds those of keys rotated away (written under the write
	// lock), so the workspace's total survives rotations.
	allowedCurrent, allowedPrevious atomic.Uint64
	identity                        Identity // KeyID of the current key
	retired                         uint64
	previous                        *previousKey // nil outside a grace period
	// revoked: digests refused but reported; rarely more than one.
	revoked []apikey.Digest
	flushed atomic.Int64
	// Attempts with a revoked key: counted on the request path, and the
	// latest one (whole seconds) kept for status.lastRevokedKeyUse.
	revokedPresented atomic.Uint64
	sighting         atomic.Pointer[Sighting]
	sightingFlushed  atomic.Int64
	// limits exist only for an object with source ranges or a rate limit:
	// most have neither, and 100k entries must stay small.
	limits *entryLimits
}

// entryLimits are an object's source ranges and rate limit, with what
// they record. Replaced, never changed, under the write lock, except for
// the atomics.
type entryLimits struct {
	// ranges: spec.allowedSourceRanges (nil: any address); outside, the
	// latest attempt is kept (status.lastDisallowedSourceUse).
	ranges            []netip.Prefix
	disallowed        atomic.Pointer[Sighting]
	disallowedFlushed atomic.Int64
	// rate is the object's rate limit; its bucket and counters follow.
	rate RateLimit
	limitCounters
}

// Sighting is one attempt with a revoked key.
type Sighting struct {
	Time          time.Time
	KeyID         string
	ClientAddress string
}

// previousKey is the key a rotation replaced, during its grace period.
type previousKey struct {
	digest apikey.Digest
	until  int64 // unix nanoseconds
	// Last use of this key, kept apart from the current key's so support
	// can tell whether clients moved (status.previousKeyLastUsedTime).
	lastUsed, flushed atomic.Int64
}

// shared stands in byDigest for a digest that two objects publish: a
// 256-bit key is in two places only if someone copied it, and which object
// is its owner cannot be told from here, so neither is believed. It matches
// nothing: a lookup of such a key is Invalid.
var shared = &entry{}

// Index maps key digests to identities.
type Index struct {
	mu sync.RWMutex
	// OnShared, if set, is told (under the index's lock) when a digest
	// becomes published by two objects and so stops working for both.
	OnShared func(first, second Identity, keyID string)
	// sharers are the objects publishing a digest that is shared.
	sharers  map[shortDigest][]*entry
	byDigest map[shortDigest]*entry
	// revoked maps revoked keys' digests, looked at only on a miss.
	revoked map[shortDigest]*entry
	// withdrawn are digests refused whatever an entry publishes: each
	// namespace's withdrawal slice (SetWithdrawn), and how many namespaces
	// list each digest. Usually empty, and then never looked at.
	withdrawn   map[apikey.Digest]int
	withdrawnBy map[string][]apikey.Digest
	// byKey is namespace → (key type, name) → entry; the namespace string
	// is interned, shared by all of its entries.
	byKey      map[string]map[objectName]*entry
	namespaces map[string]string // interning
	gen        uint32
	// replicas share each object's rate limit (SetReplicas).
	replicas atomic.Int32
}

// objectName names a key object within its namespace: the three kinds'
// names may be equal.
type objectName struct{ keyType, name string }

// New returns an empty index.
func New() *Index {
	ix := &Index{sharers: map[shortDigest][]*entry{}, byDigest: map[shortDigest]*entry{}, revoked: map[shortDigest]*entry{}, byKey: map[string]map[objectName]*entry{}, namespaces: map[string]string{},
		withdrawn: map[apikey.Digest]int{}, withdrawnBy: map[string][]apikey.Digest{}}
	ix.replicas.Store(1)
	return ix
}

// Result says why a lookup failed, or that it succeeded.
type Result int

const (
	// Allowed means the key is current, or previous within its grace period.
	Allowed Result = iota
	// Missing means no key was presented.
	Missing
	// Invalid means malformed, failed its checksum, unknown, or expired.
	Invalid
	// Revoked is a key that once worked (status.revokedKeys): refused as
	// Invalid is, but reported with the identity it belonged to.
	Revoked
)

// Lookup authenticates a presented key and records its use: Find, then
// Use.Record when it is Allowed.
func (ix *Index) Lookup(key string, now time.Time) (Result, Identity) {
	result, who, use := ix.Find(key, now)
	if result == Allowed {
		use.Record(now)
	}
	return result, who
}

// Use is an admission not yet recorded: the caller records it (Record)
// only once every other check (the path's scope) admitted the request, so
// a refused request never counts as a use of the key.
type Use struct {
	lastUsed *atomic.Int64
	allowed  *atomic.Uint64
	// ranges are the key's allowedSourceRanges (nil: any address) and
	// rate its rate limit, read under the lock; l records what they refuse
	// (nil for an object with neither).
	ranges []netip.Prefix
	rate   RateLimit
	l      *entryLimits
}

// Allow takes a token of the key object's rate limit, shared by its
// current and previous key: false, and when to retry, over the limit. A
// key without a limit always passes, at no cost.
func (u Use) Allow(replicas int32, now time.Time) (bool, time.Duration) {
	if !u.rate.limited() {
		return true, 0
	}
	return u.l.allow(u.rate, replicas, now)
}

// RateLimit is the key object's rate limit (zero: none).
func (u Use) RateLimit() RateLimit { return u.rate }

// SawRateLimited records a refusal over the rate limit for
// status.lastRateLimited: at most one kept per second per object.
func (u Use) SawRateLimited(keyID string, client netip.Addr, now time.Time) bool {
	if u.l == nil {
		return false
	}
	return keep(&u.l.lastLimited, sightingOf(keyID, client, now))
}

// Restricted reports whether the key works only from some addresses: only
// then does the caller need the client's address (AllowsSource).
func (u Use) Restricted() bool { return u.ranges != nil }

// AllowsSource reports whether the key works from client.
func (u Use) AllowsSource(client netip.Addr) bool {
	return u.ranges == nil || clientaddr.InRanges(u.ranges, client)
}

// SawDisallowedSource records an attempt with the key (keyID) from client,
// outside its ranges, for status.lastDisallowedSourceUse: the latest wins,
// at most one kept per second per key object. It reports whether this
// attempt is the one kept.
func (u Use) SawDisallowedSource(keyID string, client netip.Addr, now time.Time) bool {
	if u.l == nil {
		return false
	}
	return keep(&u.l.disallowed, sightingOf(keyID, client, now))
}

// sightingOf is one refused attempt with keyID from client, in whole
// seconds.
func sightingOf(keyID string, client netip.Addr, now time.Time) *Sighting {
	from := ""
	if client.IsValid() {
		from = client.String()
	}
	return &Sighting{Time: now.Truncate(time.Second), KeyID: keyID, ClientAddress: from}
}

// keep makes next the latest sighting in p unless p holds one as late.
func keep(p *atomic.Pointer[Sighting], next *Sighting) bool {
	for {
		last := p.Load()
		if last != nil && !next.Time.After(last.Time) {
			return false
		}
		if p.CompareAndSwap(last, next) {
			return true
		}
	}
}

// Record counts the admitted request and moves the key's last use to now
// (whole seconds: the shared word is written at most once a second).
func (u Use) Record(now time.Time) {
	if u.allowed == nil {
		return
	}
	u.allowed.Add(1)
	if sec := now.Unix(); u.lastUsed.Load() < sec {
		u.lastUsed.Store(sec)
	}
}

// Find authenticates a presented key, without recording its use. It
// checks format and checksum before touching the index, hashes the key on
// the stack, and confirms a hit with a constant-time comparison of the
// full digest. A previous key is Allowed only before its end, at now.
func (ix *Index) Find(key string, now time.Time) (Result, Identity, Use) {
	if key == "" {
		return Missing, Identity{}, Use{}
	}
	if apikey.Validate(key) != nil {
		return Invalid, Identity{}, Use{}
	}
	var buf [apikey.Length]byte
	copy(buf[:], key)
	digest := apikey.Digest(sha256.Sum256(buf[:]))

	ix.mu.RLock()
	defer ix.mu.RUnlock()
	s := ix.byDigest[short(&digest)]
	if s == nil {
		result, who := ix.lookupRevokedLocked(&digest)
		return result, who, Use{}
	}
	current := s.hasCurrent && subtle.ConstantTimeCompare(s.current[:], digest[:]) == 1
	previous := !current && s.previous != nil && subtle.ConstantTimeCompare(s.previous.digest[:], digest[:]) == 1 && now.UnixNano() < s.previous.until
	switch {
	case (current || previous) && len(ix.withdrawn) > 0 && ix.withdrawn[digest] > 0:
		// Withdrawn ahead of the slice that still publishes it.
		s.revokedPresented.Add(1)
		who := s.identity
		who.KeyID = digest.ID()
		return Revoked, who, Use{}
	case current:
		return Allowed, s.identity, s.use(&s.lastUsed, &s.allowedCurrent)
	case previous:
		who := s.identity
		who.KeyID = s.previous.digest.ID() // rare: only during a grace period
		return Allowed, who, s.use(&s.previous.lastUsed, &s.allowedPrevious)
	}
	result, who := ix.lookupRevokedLocked(&digest)
	return result, who, Use{}
}

// SetWithdrawn replaces what namespace's withdrawal slice refuses (nil:
// nothing): digests that a slice of keys may still publish, refused as
// revoked keys are until that slice is rewritten without them.
func (ix *Index) SetWithdrawn(namespace string, digests []apikey.Digest) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.setWithdrawnLocked(namespace, digests)
}

func (ix *Index) setWithdrawnLocked(namespace string, digests []apikey.Digest) {
	for _, d := range ix.withdrawnBy[namespace] {
		if ix.withdrawn[d]--; ix.withdrawn[d] <= 0 {
			delete(ix.withdrawn, d)
		}
	}
	delete(ix.withdrawnBy, namespace)
	if len(digests) == 0 {
		return
	}
	ix.withdrawnBy[namespace] = slices.Clone(digests)
	for _, d := range digests {
		ix.withdrawn[d]++
	}
}

// use is an admission of one of s's keys, with its limits (under the lock).
func (s *entry) use(lastUsed *atomic.Int64, allowed *atomic.Uint64) Use {
	u := Use{lastUsed: lastUsed, allowed: allowed}
	if l := s.limits; l != nil {
		u.ranges, u.rate, u.l = l.ranges, l.rate, l
	}
	return u
}

// lookupRevokedLocked reports a digest that is not admitted: Revoked with
// its identity if it is one of a key's revoked keys, else Invalid.
func (ix *Index) lookupRevokedLocked(digest *apikey.Digest) (Result, Identity) {
	s := ix.revoked[short(digest)]
	if s == nil {
		return Invalid, Identity{}
	}
	for i := range s.revoked {
		if subtle.ConstantTimeCompare(s.revoked[i][:], digest[:]) == 1 {
			s.revokedPresented.Add(1)
			who := s.identity
			who.KeyID = digest.ID() // only on this rare path
			return Revoked, who
		}
	}
	return Invalid, Identity{}
}

// Match is what Reported finds of a digest.
type Match int

const (
	// NoMatch means no key object has, or had, this key.
	NoMatch Match = iota
	// MatchCurrent is a key object's current key.
	MatchCurrent
	// MatchPrevious is a key object's previous key, in or past its grace.
	MatchPrevious
	// MatchRevoked is one of a key object's remembered revoked keys.
	MatchRevoked
)

// Reported finds the key object a reported (leaked) key belongs to, among
// current, previous and remembered revoked keys (a key withdrawn ahead of
// its slice is revoked already), without counting it as a request.
// who.KeyID is the reported key's.
func (ix *Index) Reported(digest apikey.Digest) (Match, Identity) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	who := func(s *entry) Identity {
		w := s.identity
		w.KeyID = digest.ID()
		return w
	}
	if s := ix.byDigest[short(&digest)]; s != nil {
		switch {
		case ix.withdrawn[digest] > 0 && s != shared:
			return MatchRevoked, who(s) // withdrawn ahead of its slice
		case s.hasCurrent && s.current == digest:
			return MatchCurrent, who(s)
		case s.previous != nil && s.previous.digest == digest:
			return MatchPrevious, who(s)
		}
	}
	for _, s := range ix.sharers[short(&digest)] {
		// A key two objects publish is refused for both already; the
		// first is told of the leak.
		if s.hasCurrent && s.current == digest {
			return MatchCurrent, who(s)
		}
	}
	if s := ix.revoked[short(&digest)]; s != nil && slices.Contains(s.revoked, digest) {
		return MatchRevoked, who(s)
	}
	return NoMatch, Identity{}
}

// SawRevoked records where and when a key that Lookup found Revoked was
// presented, for status.lastRevokedKeyUse: the latest attempt wins, at most
// one kept per second per workspace. It reports whether this attempt is the
// one kept.
func (ix *Index) SawRevoked(key, clientAddress string, now time.Time) bool {
	digest := apikey.DigestOf(key)
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	s := ix.revoked[short(&digest)]
	if s == nil && ix.withdrawn[digest] > 0 {
		s = ix.byDigest[short(&digest)] // withdrawn, still published
	}
	if s == nil || s == shared {
		return false
	}
	return keep(&s.sighting, &Sighting{Time: now.Truncate(time.Second), KeyID: digest.ID(), ClientAddress: clientAddress})
}

// Set replaces everything the index knows of one key object. Use counters
// survive: they belong to the workspace's key, across rotations.
func (ix *Index) Set(in Keys) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.setLocked(in, ix.gen)
}

func (ix *Index) setLocked(in Keys, gen uint32) {
	if in.Type == "" {
		in.Type = TypeWorkspace // what every key was before there were three
	}
	ns, ok := ix.namespaces[in.Namespace]
	if !ok {
		ns = in.Namespace
		ix.namespaces[ns] = ns
	}
	byName := ix.byKey[ns]
	if byName == nil {
		byName = map[objectName]*entry{}
		ix.byKey[ns] = byName
	}
	s := byName[objectName{in.Type, in.Name}]
	if s == nil {
		s = &entry{}
		byName[objectName{in.Type, in.Name}] = s
	}
	ix.unlinkLocked(s)
	oldCurrent, hadCurrent := s.current, s.hasCurrent
	s.moveCounts(in)
	s.gen = gen
	keyID := s.identity.KeyID
	s.identity = Identity{Namespace: ns, Workspace: in.Workspace, Name: in.Name,
		Type:        interned(in.Type, TypeWorkspace, TypeChannel, TypeWhatsApp),
		ChannelType: interned(in.ChannelType, "SMS", "VBM", "Telegram")}
	switch {
	case in.AllowedSourceRanges != nil || in.RateLimit.limited():
		if s.limits == nil {
			s.limits = &entryLimits{}
		}
		s.limits.ranges, s.limits.rate = in.AllowedSourceRanges, in.RateLimit
	case s.limits != nil:
		// Limits removed: the counters stay (metrics, pending sightings).
		s.limits.ranges, s.limits.rate = nil, RateLimit{}
	}
	s.hasCurrent = false
	if in.HasCurrent && ix.linkLocked(&in.Current, s) {
		if !hadCurrent || in.Current != oldCurrent || keyID == "" {
			keyID = in.Current.ID()
		}
		s.identity.KeyID = keyID
		s.current, s.hasCurrent = in.Current, true
	}
	previous := s.previous
	s.previous = nil
	if in.HasPrevious && !in.PreviousValidUntil.IsZero() && ix.linkLocked(&in.Previous, s) {
		if previous == nil || previous.digest != in.Previous {
			previous = &previousKey{digest: in.Previous}
			if hadCurrent && in.Previous == oldCurrent {
				// The current key became the previous one: so does its use,
				// and the new current key has not been used yet. Its flush
				// mark does not: that use went to lastUsedTime, and
				// previousKeyLastUsedTime has not been written yet.
				previous.lastUsed.Store(s.lastUsed.Swap(0))
				s.flushed.Store(0)
			}
		}
		previous.until = in.PreviousValidUntil.UnixNano()
		s.previous = previous
	}
	if sec := in.LastUsed.Unix(); !in.LastUsed.IsZero() && s.hasCurrent && s.flushed.Load() < sec {
		s.flushed.Store(sec)
	}
	ix.linkRevokedLocked(s, in.Revoked)
}

// moveCounts makes the counters follow their key: a rotation turns current
// into previous, and the counts of a key that goes are retired.
func (s *entry) moveCounts(in Keys) {
	countCurrent, countPrevious := s.allowedCurrent.Load(), s.allowedPrevious.Load()
	switch {
	case s.hasCurrent && in.HasPrevious && in.Previous == s.current:
		s.retired += countPrevious
		countCurrent, countPrevious = 0, countCurrent
	case !s.hasCurrent || in.Current != s.current:
		s.retired += countCurrent + countPrevious
		countCurrent, countPrevious = 0, 0
	}
	s.allowedCurrent.Store(countCurrent)
	s.allowedPrevious.Store(countPrevious)
}

// linkRevokedLocked maps the revoked digests to s, but none that another
// entry's revoked keys hold already.
func (ix *Index) linkRevokedLocked(s *entry, revoked []apikey.Digest) {
	s.revoked = s.revoked[:0]
	for i := range revoked {
		d := &revoked[i]
		if other, taken := ix.revoked[short(d)]; taken && other != s {
			continue
		}
		ix.revoked[short(d)] = s
		s.revoked = append(s.revoked, *d)
	}
	if len(s.revoked) == 0 {
		s.revoked = nil
	}
}

// linkLocked maps d to s. When another object publishes d too, neither is
// believed (shared) until one of them stops publishing it.
func (ix *Index) linkLocked(d *apikey.Digest, s *entry) bool {
	k := short(d)
	switch other, taken := ix.byDigest[k]; {
	case !taken || other == s:
		ix.byDigest[k] = s
	case other == shared:
		ix.sharers[k] = append(ix.sharers[k], s)
	default:
		ix.byDigest[k] = shared
		ix.sharers[k] = []*entry{other, s}
		if ix.OnShared != nil {
			ix.OnShared(other.identity, s.identity, d.ID())
		}
	}
	return true
}

// unlinkDigestLocked removes s's claim on d; a digest shared by two is
// believed again when only one publishes it.
func (ix *Index) unlinkDigestLocked(d *apikey.Digest, s *entry) {
	k := short(d)
	switch ix.byDigest[k] {
	case s:
		delete(ix.byDigest, k)
	case shared:
		rest := slices.DeleteFunc(ix.sharers[k], func(o *entry) bool { return o == s })
		switch len(rest) {
		case 0:
			delete(ix.byDigest, k)
			delete(ix.sharers, k)
		case 1:
			ix.byDigest[k] = rest[0]
			delete(ix.sharers, k)
		default:
			ix.sharers[k] = rest
		}
	}
}

func (ix *Index) unlinkLocked(s *entry) {
	if s.hasCurrent {
		ix.unlinkDigestLocked(&s.current, s)
	}
	if s.previous != nil {
		ix.unlinkDigestLocked(&s.previous.digest, s)
	}
	for i := range s.revoked {
		if ix.revoked[short(&s.revoked[i])] == s {
			delete(ix.revoked, short(&s.revoked[i]))
		}
	}
}

// Delete forgets the keys of the key object of keyType and name.
func (ix *Index) Delete(namespace, keyType, name string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.deleteLocked(namespace, objectName{keyType, name})
}

func (ix *Index) deleteLocked(namespace string, name objectName) {
	byName := ix.byKey[namespace]
	s := byName[name]
	if s == nil {
		return
	}
	ix.unlinkLocked(s)
	delete(byName, name)
	if len(byName) == 0 {
		delete(ix.byKey, namespace)
		delete(ix.namespaces, namespace)
	}
}

// each calls f for every entry; the caller holds a lock.
func (ix *Index) each(f func(s *entry)) {
	for _, byName := range ix.byKey {
		for _, s := range byName {
			f(s)
		}
	}
}

// Len is the number of accepted digests (current and previous keys).
func (ix *Index) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.byDigest)
}

// Usage is one workspace's last uses not yet written: of its current key
// (status.lastUsedTime), of its previous key (previousKeyLastUsedTime) and
// of a revoked key (lastRevokedKeyUse); each is zero (nil) when nothing new
// is pending for it.
type Usage struct {
	Identity
	LastUsed, PreviousLastUsed time.Time
	RevokedUse                 *Sighting
	// DisallowedSourceUse is the latest attempt from outside the key's
	// allowedSourceRanges (status.lastDisallowedSourceUse).
	DisallowedSourceUse *Sighting
	// RateLimited is the latest refusal over the rate limit
	// (status.lastRateLimited).
	RateLimited *Sighting
	s           *entry
	p           *previousKey
}

// Pending returns the workspace keys used since their last Flushed call.
func (ix *Index) Pending() []Usage { return ix.PendingAt(time.Time{}, 0) }

// PendingAt is Pending with the current key's use coarsened: a use is
// pending only when the last recorded one (written by any replica) is at
// least refresh old at now. So the first use after refresh without a
// recorded use is written at the next flush, and a key in constant use is
// written once per refresh, not once per flush: at 100,000 keys in use and
// a refresh of an hour, 28 writes a second instead of 1,667. The previous
// key's use (a grace period: does anyone still use the old key?) and
// revoked-key sightings are never coarsened.
func (ix *Index) PendingAt(now time.Time, refresh time.Duration) []Usage {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	var out []Usage
	due := now.Add(-refresh).Unix()
	ix.each(func(s *entry) {
		u := Usage{Identity: s.identity, s: s, p: s.previous}
		if last, flushed := s.lastUsed.Load(), s.flushed.Load(); last > flushed && (refresh <= 0 || flushed <= due) {
			u.LastUsed = time.Unix(last, 0)
		}
		if p := s.previous; p != nil {
			if last := p.lastUsed.Load(); last > p.flushed.Load() {
				u.PreviousLastUsed = time.Unix(last, 0)
			}
		}
		if sighting := s.sighting.Load(); sighting != nil && sighting.Time.Unix() > s.sightingFlushed.Load() {
			u.RevokedUse = sighting
		}
		if l := s.limits; l != nil {
			if sighting := l.disallowed.Load(); sighting != nil && sighting.Time.Unix() > l.disallowedFlushed.Load() {
				u.DisallowedSourceUse = sighting
			}
			if sighting := l.lastLimited.Load(); sighting != nil && sighting.Time.Unix() > l.lastLimitedFlushed.Load() {
				u.RateLimited = sighting
			}
		}
		if !u.LastUsed.IsZero() || !u.PreviousLastUsed.IsZero() || u.RevokedUse != nil || u.DisallowedSourceUse != nil || u.RateLimited != nil {
			out = append(out, u)
		}
	})
	return out
}

// KeyCount is the number of requests one key admitted.
type KeyCount struct {
	Identity
	Allowed uint64
}

// Counts returns the keys that admitted at least one request since they
// were loaded.
func (ix *Index) Counts() []KeyCount {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	var out []KeyCount
	ix.each(func(s *entry) {
		if n := s.allowedCurrent.Load(); n > 0 && s.hasCurrent {
			out = append(out, KeyCount{Identity: s.identity, Allowed: n})
		}
		if n := s.allowedPrevious.Load(); n > 0 && s.previous != nil {
			who := s.identity
			who.KeyID = s.previous.digest.ID()
			out = append(out, KeyCount{Identity: who, Allowed: n})
		}
	})
	return out
}

// Flushed marks a use written, so it is not pending until a newer one.
func (u Usage) Flushed() {
	if sec := u.LastUsed.Unix(); !u.LastUsed.IsZero() && u.s.flushed.Load() < sec {
		u.s.flushed.Store(sec)
	}
	if sec := u.PreviousLastUsed.Unix(); !u.PreviousLastUsed.IsZero() && u.p.flushed.Load() < sec {
		u.p.flushed.Store(sec)
	}
	if u.RevokedUse != nil && u.s.sightingFlushed.Load() < u.RevokedUse.Time.Unix() {
		u.s.sightingFlushed.Store(u.RevokedUse.Time.Unix())
	}
	if l := u.s.limits; l != nil {
		if u.DisallowedSourceUse != nil && l.disallowedFlushed.Load() < u.DisallowedSourceUse.Time.Unix() {
			l.disallowedFlushed.Store(u.DisallowedSourceUse.Time.Unix())
		}
		if u.RateLimited != nil && l.lastLimitedFlushed.Load() < u.RateLimited.Time.Unix() {
			l.lastLimitedFlushed.Store(u.RateLimited.Time.Unix())
		}
	}
}

// WorkspaceCount is a count for one workspace.
type WorkspaceCount struct {
	Namespace, Workspace string
	Count                uint64
}

// AllowedByWorkspace returns, per workspace, the requests admitted since
// the proxy started, whatever key admitted them (workspaces with none are
// left out): a series that survives rotations.
func (ix *Index) AllowedByWorkspace() []WorkspaceCount {
	return ix.perWorkspace(func(s *entry) uint64 { return s.retired + s.allowedCurrent.Load() + s.allowedPrevious.Load() })
}

// RevokedPresented returns, per workspace, the attempts with one of its
// revoked keys since the proxy started (workspaces with none are left out).
func (ix *Index) RevokedPresented() []WorkspaceCount {
	return ix.perWorkspace(func(s *entry) uint64 { return s.revokedPresented.Load() })
}

// perWorkspace returns the non-zero counts of every workspace, summed
// over its keys of every type.
func (ix *Index) perWorkspace(count func(s *entry) uint64) []WorkspaceCount {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	var out []WorkspaceCount
	at := map[[2]string]int{}
	ix.each(func(s *entry) {
		n := count(s)
		if n == 0 {
			return
		}
		k := [2]string{s.identity.Namespace, s.identity.Workspace}
		if i, ok := at[k]; ok {
			out[i].Count += n
			return
		}
		at[k] = len(out)
		out = append(out, WorkspaceCount{Namespace: k[0], Workspace: k[1], Count: n})
	})
	return out
}

// Sync is one full list of a scope: entries it does not Set are removed at End.
type Sync struct {
	ix  *Index
	gen uint32
	// withdrawn are the namespaces whose withdrawal slice the list brought.
	withdrawn map[string]bool
}

// BeginSync starts a full list. Lookups go on meanwhile: until End, the index
// holds the union of what it had and what the list has brought so far.
func (ix *Index) BeginSync() Sync {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.gen++
	return Sync{ix: ix, gen: ix.gen, withdrawn: map[string]bool{}}
}

// SetWithdrawn records one listed withdrawal slice (Index.SetWithdrawn).
func (s Sync) SetWithdrawn(namespace string, digests []apikey.Digest) {
	s.ix.mu.Lock()
	defer s.ix.mu.Unlock()
	s.withdrawn[namespace] = true
	s.ix.setWithdrawnLocked(namespace, digests)
}

// EndWithdrawn forgets the withdrawal slices of scope (a namespace, or ""
// for all) that the list did not bring.
func (s Sync) EndWithdrawn(scope string) {
	s.ix.mu.Lock()
	defer s.ix.mu.Unlock()
	for ns := range s.ix.withdrawnBy {
		if (scope == "" || ns == scope) && !s.withdrawn[ns] {
			s.ix.setWithdrawnLocked(ns, nil)
		}
	}
}

// Set records one listed key object.
func (s Sync) Set(in Keys) {
	s.ix.mu.Lock()
	defer s.ix.mu.Unlock()
	s.ix.setLocked(in, s.gen)
}

// End removes the entries of keyType in scope (a namespace, or "" for
// all) that the list did not bring: they were deleted while nobody watched.
func (s Sync) End(scope, keyType string) {
	s.ix.mu.Lock()
	defer s.ix.mu.Unlock()
	for ns, byName := range s.ix.byKey {
		if scope != "" && ns != scope {
			continue
		}
		for name, sec := range byName {
			if name.keyType == keyType && sec.gen != s.gen {
				s.ix.deleteLocked(ns, name)
			}
		}
	}
}
