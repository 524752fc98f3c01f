// Package keyplan decides what to do with a key Secret: keep it, rotate it,
// re-issue it, or drop an expired previous key. It holds no I/O, so every
// decision is a table test.
package keyplan

import (
	"slices"
	"time"

	"github.com/octopods/octopods-operator/internal/apikey"
)

// Observed is what the key Secret holds now.
type Observed struct {
	// Current and Previous are data.api-key and data.previous-api-key,
	// as fingerprints: the manager decides without holding a key.
	Current            apikey.Fingerprint
	KeyID              string // octopods.io/key-id
	HandledToken       string // octopods.io/rotation-token
	Previous           apikey.Fingerprint
	PreviousValidUntil string // octopods.io/previous-valid-until, RFC 3339
	// PreviousPublished: the previous key's digest is among the keys the
	// operator published, so the operator wrote it. A previous key added by
	// hand is never published, and is removed.
	PreviousPublished bool
	// KeyPublished: the current key's digest is among the published keys,
	// so the operator issued it, whatever the key-id annotation says.
	KeyPublished bool
	// HandledRevokeToken is the last octopods.io/revoke-previous token
	// handled (octopods.io/revoke-previous-token).
	HandledRevokeToken string
	// IssuedAt is when the current key was issued (octopods.io/issued-at);
	// zero when unknown.
	IssuedAt time.Time
	// RecentTokens are the last rotation tokens handled (octopods.io/
	// rotation-token-history), so a token re-applied later rotates nothing.
	RecentTokens []string
}

// MaxRecentTokens is how many handled rotation tokens are remembered.
const MaxRecentTokens = 16

// Handled reports whether a rotation token was already handled.
func (o Observed) Handled(token string) bool {
	return token == o.HandledToken || slices.Contains(o.RecentTokens, token)
}

// Remember returns the token history after handling token: newest last, at
// most MaxRecentTokens, no repeats.
func Remember(history []string, token string) []string {
	out := make([]string, 0, MaxRecentTokens)
	for _, t := range history {
		if t != token && t != "" {
			out = append(out, t)
		}
	}
	out = append(out, token)
	return out[max(0, len(out)-MaxRecentTokens):]
}

// Desired is what the WorkspaceAPIKey asks for.
type Desired struct {
	RotateToken string // octopods.io/rotate
	GracePeriod time.Duration
	// RotationInterval rotates the key when it has been current this long
	// (zero: no schedule).
	RotationInterval time.Duration
	// RevokePreviousToken is octopods.io/revoke-previous: a new value ends
	// a running grace period at once.
	RevokePreviousToken string
	// LeakedKeyID is a key reported found in public that is to stop
	// working now (spec.leakResponse Rotate); LeakToken the token its
	// rotation handles. A key no longer current or previous needs nothing.
	LeakedKeyID, LeakToken string
}

// NextRotation is when a key issued at issuedAt is due for its scheduled
// rotation; zero without a schedule or an issue time.
func NextRotation(issuedAt time.Time, interval time.Duration) time.Time {
	if interval <= 0 || issuedAt.IsZero() {
		return time.Time{}
	}
	return issuedAt.Add(interval)
}

// Action is what happens to the current key.
type Action int

const (
	// Keep leaves the current key alone.
	Keep Action = iota
	// Rotate replaces the key because of a new rotation token.
	Rotate
	// Reissue replaces a key that was edited by hand (or is otherwise not
	// the key this operator wrote).
	Reissue
)

func (a Action) String() string {
	switch a {
	case Rotate:
		return "Rotate"
	case Reissue:
		return "Reissue"
	default:
		return "Keep"
	}
}

// Plan is the decision for one Secret.
type Plan struct {
	Action Action
	// KeepPrevious: after a Rotate with a grace period, the current key
	// becomes the previous one until PreviousValidUntil.
	KeepPrevious       bool
	PreviousValidUntil time.Time
	// DropPrevious: the previous key is expired, malformed, unbounded or
	// was not written by the operator, and must be removed now (Keep only).
	DropPrevious bool
	// PreviousUntrusted: the dropped previous key was never published.
	PreviousUntrusted bool
	// HandlesToken: a Reissue also handles the pending rotation token, so a
	// hand edit and a new token together make one new key, not two.
	HandlesToken bool
	// RepairKeyID: the key is the operator's but its key-id annotation was
	// edited; the annotation is written again, the key kept.
	RepairKeyID bool
	// RevokeToken, when set, is a new revoke-previous token to record as
	// handled; with a previous key present, DropPrevious is set with it.
	RevokeToken string
	// Token is the rotation token a Rotate handles: the pending
	// octopods.io/rotate, or "scheduled-<due time>" for a scheduled one.
	Token string
	// Leaked: the plan answers a leak report (Desired.LeakedKeyID): a
	// Rotate without grace of the current key, or DropPrevious.
	Leaked bool
	// RecheckAt is when to look again: a kept previous key expires, or the
	// next scheduled rotation is due (zero when neither).
	RecheckAt time.Time
}

// Intact reports whether the Secret holds a well-formed key that matches its
// key-id annotation, i.e. the key this operator wrote.
func (o Observed) Intact() bool {
	return o.Current.Valid && o.Current.ID() == o.KeyID
}

// Decide returns the plan for a Secret. Nothing but a new rotation token or a
// hand-edited key ever replaces a key.
func Decide(o Observed, d Desired, now time.Time) Plan {
	pending := d.RotateToken != "" && !o.Handled(d.RotateToken)
	repair := false
	if !o.Intact() {
		if !o.Current.Valid || !o.KeyPublished {
			// A hand-edited Secret's previous key is not trusted either.
			plan := Plan{Action: Reissue, HandlesToken: pending}
			if pending {
				plan.Token = d.RotateToken
			}
			return plan
		}
		// Only the annotation was edited: a working key is never replaced
		// for that.
		repair = true
	}
	plan := decideIntact(o, d, pending, now)
	plan.RepairKeyID = repair
	return plan
}

// ScheduledTokenPrefix starts the token of a scheduled rotation:
// "scheduled-<RFC 3339 time it was due>". The due time follows from the
// current key's issue time, so the token is the same on every reconcile and
// after a restart until the rotation is done, and then handled (remembered).
const ScheduledTokenPrefix = "scheduled-"

// ScheduledToken is the token of the rotation due at due.
func ScheduledToken(due time.Time) string {
	return ScheduledTokenPrefix + due.UTC().Format(time.RFC3339)
}

func decideIntact(o Observed, d Desired, pending bool, now time.Time) Plan {
	if plan, leaked := decideLeak(o, d, now); leaked {
		return plan
	}
	token := ""
	if pending {
		token = d.RotateToken
	} else if due := NextRotation(o.IssuedAt, d.RotationInterval); !due.IsZero() && !now.Before(due) && !o.Handled(ScheduledToken(due)) {
		token = ScheduledToken(due)
	}
	if token != "" {
		plan := Plan{Action: Rotate, Token: token, RecheckAt: NextRotation(now, d.RotationInterval)}
		if d.GracePeriod > 0 {
			until := now.Add(d.GracePeriod)
			plan.KeepPrevious, plan.PreviousValidUntil, plan.RecheckAt = true, until, earliest(until, plan.RecheckAt)
		}
		return plan
	}
	plan := decidePrevious(o, now)
	if d.RevokePreviousToken != "" && d.RevokePreviousToken != o.HandledRevokeToken {
		// Support ends the grace period now (or, with none running, the
		// token is only recorded, so it can never cut a later one short).
		plan.RevokeToken = d.RevokePreviousToken
		if o.Previous.Present || o.PreviousValidUntil != "" {
			plan.DropPrevious, plan.RecheckAt = true, time.Time{}
		}
	}
	if due := NextRotation(o.IssuedAt, d.RotationInterval); due.After(now) {
		plan.RecheckAt = earliest(plan.RecheckAt, due)
	}
	return plan
}

// decideLeak answers a reported leak of the current key with an immediate
// rotation (no grace: the leaked key must not keep working), and of the
// previous key by dropping it. A pending rotation token is left for later:
// the leak does not wait for it, and it still rotates once handled.
func decideLeak(o Observed, d Desired, now time.Time) (Plan, bool) {
	switch {
	case d.LeakedKeyID == "":
		return Plan{}, false
	case d.LeakedKeyID == o.Current.ID():
		return Plan{Action: Rotate, Token: d.LeakToken, Leaked: true, RecheckAt: NextRotation(now, d.RotationInterval)}, true
	case d.LeakedKeyID == o.Previous.ID():
		return Plan{Action: Keep, DropPrevious: true, Leaked: true, RecheckAt: NextRotation(o.IssuedAt, d.RotationInterval)}, true
	}
	return Plan{}, false
}

// decidePrevious keeps, or drops, the previous key of an intact Secret.
func decidePrevious(o Observed, now time.Time) Plan {
	if !o.Previous.Present && o.PreviousValidUntil == "" {
		return Plan{Action: Keep}
	}
	if o.Previous.Present && !o.PreviousPublished {
		return Plan{Action: Keep, DropPrevious: true, PreviousUntrusted: true}
	}
	until, err := time.Parse(time.RFC3339, o.PreviousValidUntil)
	if err != nil || !o.Previous.Valid || !now.Before(until) {
		return Plan{Action: Keep, DropPrevious: true}
	}
	return Plan{Action: Keep, RecheckAt: until}
}

// earliest is the earlier of two times, a zero one counting as none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
