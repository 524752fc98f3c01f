// Package keyplan decides what to do with a key Secret: keep it, rotate it,
// re-issue it, or drop an expired previous key. It holds no I/O, so every
// decision is a table test.
package keyplan

import (
	"time"

	"github.com/octopods/octopods-operator/internal/apikey"
)

// Observed is what the key Secret holds now.
type Observed struct {
	Key                string // data.api-key
	KeyID              string // octopods.io/key-id
	HandledToken       string // octopods.io/rotation-token
	PreviousKey        string // data.previous-api-key
	PreviousValidUntil string // octopods.io/previous-valid-until, RFC 3339
}

// Desired is what the WorkspaceAPIKey asks for.
type Desired struct {
	RotateToken string // octopods.io/rotate
	GracePeriod time.Duration
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
	// DropPrevious: the previous key is expired, malformed or unbounded and
	// must be removed now (Keep only).
	DropPrevious bool
	// RecheckAt is when a kept previous key expires (zero when none).
	RecheckAt time.Time
}

// Intact reports whether the Secret holds a well-formed key that matches its
// key-id annotation, i.e. the key this operator wrote.
func (o Observed) Intact() bool {
	return apikey.Validate(o.Key) == nil && apikey.ID(o.Key) == o.KeyID
}

// Decide returns the plan for a Secret. Nothing but a new rotation token or a
// hand-edited key ever replaces a key.
func Decide(o Observed, d Desired, now time.Time) Plan {
	if !o.Intact() {
		// A hand-edited Secret's previous key is not trusted either.
		return Plan{Action: Reissue}
	}
	if d.RotateToken != "" && d.RotateToken != o.HandledToken {
		if d.GracePeriod <= 0 {
			return Plan{Action: Rotate}
		}
		until := now.Add(d.GracePeriod)
		return Plan{Action: Rotate, KeepPrevious: true, PreviousValidUntil: until, RecheckAt: until}
	}
	if o.PreviousKey == "" && o.PreviousValidUntil == "" {
		return Plan{Action: Keep}
	}
	until, err := time.Parse(time.RFC3339, o.PreviousValidUntil)
	if err != nil || apikey.Validate(o.PreviousKey) != nil || !now.Before(until) {
		return Plan{Action: Keep, DropPrevious: true}
	}
	return Plan{Action: Keep, RecheckAt: until}
}
