package keyplan

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/octopods/octopods-operator/internal/apikey"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	key, _ := apikey.Generate()
	prev, _ := apikey.Generate()
	other, _ := apikey.Generate()
	intact := Observed{Current: apikey.FingerprintOf(key), KeyID: apikey.ID(key), HandledToken: "t1"}
	withPrevious := func(until string) Observed {
		o := intact
		o.Previous, o.PreviousValidUntil, o.PreviousPublished = apikey.FingerprintOf(prev), until, true
		return o
	}
	future, past := now.Add(time.Hour).Format(time.RFC3339), now.Add(-time.Second).Format(time.RFC3339)
	scheduled := func(issued time.Time) Observed {
		o := intact
		o.IssuedAt = issued
		return o
	}

	cases := []struct {
		name string
		obs  Observed
		want Desired
		plan Plan
	}{
		{"steady", intact, Desired{RotateToken: "t1"}, Plan{Action: Keep}},
		{"no token ever", Observed{Current: apikey.FingerprintOf(key), KeyID: apikey.ID(key)}, Desired{}, Plan{Action: Keep}},
		{"token removed", intact, Desired{}, Plan{Action: Keep}},
		{"new token, no grace", intact, Desired{RotateToken: "t2"}, Plan{Action: Rotate, Token: "t2"}},
		{"new token, grace", intact, Desired{RotateToken: "t2", GracePeriod: time.Minute},
			Plan{Action: Rotate, Token: "t2", KeepPrevious: true, PreviousValidUntil: now.Add(time.Minute), RecheckAt: now.Add(time.Minute)}},
		{"same token re-applied", withPrevious(future), Desired{RotateToken: "t1", GracePeriod: time.Minute},
			Plan{Action: Keep, RecheckAt: now.Add(time.Hour)}},
		{"grace passed", withPrevious(past), Desired{RotateToken: "t1"}, Plan{Action: Keep, DropPrevious: true}},
		{"grace ends exactly now", withPrevious(now.Format(time.RFC3339)), Desired{RotateToken: "t1"}, Plan{Action: Keep, DropPrevious: true}},
		{"previous without expiry", withPrevious(""), Desired{RotateToken: "t1"}, Plan{Action: Keep, DropPrevious: true}},
		{"expiry without previous", Observed{Current: apikey.FingerprintOf(key), KeyID: apikey.ID(key), PreviousValidUntil: future}, Desired{}, Plan{Action: Keep, DropPrevious: true}},
		{"malformed previous", func() Observed { o := withPrevious(future); o.Previous = apikey.FingerprintOf("x"); return o }(), Desired{}, Plan{Action: Keep, DropPrevious: true}},
		{"key edited by hand", Observed{Current: apikey.FingerprintOf(other), KeyID: apikey.ID(key), HandledToken: "t1"}, Desired{RotateToken: "t1"}, Plan{Action: Reissue}},
		{"only the key-id annotation edited", Observed{Current: apikey.FingerprintOf(key), KeyID: "0123456789ab", HandledToken: "t1", KeyPublished: true}, Desired{RotateToken: "t1"}, Plan{Action: Keep, RepairKeyID: true}},
		{"annotation edited and a new token", Observed{Current: apikey.FingerprintOf(key), KeyID: "0123456789ab", HandledToken: "t1", KeyPublished: true}, Desired{RotateToken: "t2"}, Plan{Action: Rotate, Token: "t2", RepairKeyID: true}},
		{"key edited, never published", Observed{Current: apikey.FingerprintOf(other), KeyID: "0123456789ab", HandledToken: "t1"}, Desired{RotateToken: "t1"}, Plan{Action: Reissue}},
		{"key not a key", Observed{Current: apikey.FingerprintOf("hunter2"), KeyID: apikey.ID("hunter2")}, Desired{}, Plan{Action: Reissue}},
		{"key removed", Observed{KeyID: apikey.ID(key)}, Desired{}, Plan{Action: Reissue}},
		{"edited and new token: one new key for both", Observed{Current: apikey.FingerprintOf(other), KeyID: apikey.ID(key), HandledToken: "t1"}, Desired{RotateToken: "t2"}, Plan{Action: Reissue, HandlesToken: true, Token: "t2"}},
		{"older token re-applied (GitOps revert)", Observed{Current: apikey.FingerprintOf(key), KeyID: apikey.ID(key), HandledToken: "t2", RecentTokens: []string{"t0", "t1", "t2"}}, Desired{RotateToken: "t1"}, Plan{Action: Keep}},
		{"token forgotten after 16 more", Observed{Current: apikey.FingerprintOf(key), KeyID: apikey.ID(key), HandledToken: "t17", RecentTokens: []string{"t2", "t17"}}, Desired{RotateToken: "t1"}, Plan{Action: Rotate, Token: "t1"}},
		{"schedule not due: wake up when it is", scheduled(now.Add(-time.Hour)), Desired{RotateToken: "t1", RotationInterval: 2 * time.Hour},
			Plan{Action: Keep, RecheckAt: now.Add(time.Hour)}},
		{"schedule due: rotate with the due time as token", scheduled(now.Add(-2 * time.Hour)), Desired{RotateToken: "t1", RotationInterval: 2 * time.Hour},
			Plan{Action: Rotate, Token: "scheduled-2026-11-26T10:00:00Z", RecheckAt: now.Add(2 * time.Hour)}},
		{"schedule due, with grace: previous kept, wake up at the earlier", scheduled(now.Add(-3 * time.Hour)), Desired{RotationInterval: 2 * time.Hour, GracePeriod: time.Minute},
			Plan{Action: Rotate, Token: "scheduled-2026-11-26T09:00:00Z", KeepPrevious: true, PreviousValidUntil: now.Add(time.Minute), RecheckAt: now.Add(time.Minute)}},
		{"scheduled token already handled: never twice", func() Observed {
			o := scheduled(now.Add(-2 * time.Hour))
			o.RecentTokens = []string{"scheduled-2026-11-26T10:00:00Z"}
			return o
		}(), Desired{RotationInterval: 2 * time.Hour}, Plan{Action: Keep}},
		{"a pending token wins over the schedule", scheduled(now.Add(-5 * time.Hour)), Desired{RotateToken: "LEAK", RotationInterval: time.Hour},
			Plan{Action: Rotate, Token: "LEAK", RecheckAt: now.Add(time.Hour)}},
		{"no issue time: no schedule", intact, Desired{RotateToken: "t1", RotationInterval: time.Hour}, Plan{Action: Keep}},
		{"revoke-previous during a grace: dropped at once", withPrevious(future), Desired{RotateToken: "t1", RevokePreviousToken: "R1"},
			Plan{Action: Keep, DropPrevious: true, RevokeToken: "R1"}},
		{"revoke-previous token already handled: the grace goes on", func() Observed { o := withPrevious(future); o.HandledRevokeToken = "R1"; return o }(),
			Desired{RotateToken: "t1", RevokePreviousToken: "R1"}, Plan{Action: Keep, RecheckAt: now.Add(time.Hour)}},
		{"revoke-previous with no grace running: only recorded", intact, Desired{RotateToken: "t1", RevokePreviousToken: "R2"},
			Plan{Action: Keep, RevokeToken: "R2"}},
		{"previous added by hand", func() Observed { o := withPrevious("2099-01-01T00:00:00Z"); o.PreviousPublished = false; return o }(), Desired{RotateToken: "t1"},
			Plan{Action: Keep, DropPrevious: true, PreviousUntrusted: true}},
		{"leaked current key: rotated at once, whatever the grace", withPrevious(future), Desired{RotateToken: "t1", GracePeriod: time.Hour, LeakedKeyID: apikey.ID(key), LeakToken: "leak-x"},
			Plan{Action: Rotate, Token: "leak-x", Leaked: true}},
		{"leaked current key beats a pending token", intact, Desired{RotateToken: "t2", GracePeriod: time.Hour, LeakedKeyID: apikey.ID(key), LeakToken: "leak-x"},
			Plan{Action: Rotate, Token: "leak-x", Leaked: true}},
		{"leaked key whose annotation was edited: still the key", Observed{Current: apikey.FingerprintOf(key), KeyID: "0123456789ab", HandledToken: "t1", KeyPublished: true}, Desired{RotateToken: "t1", LeakedKeyID: apikey.ID(key), LeakToken: "leak-x"},
			Plan{Action: Rotate, Token: "leak-x", Leaked: true, RepairKeyID: true}},
		{"leaked previous key: dropped, the current one kept", withPrevious(future), Desired{RotateToken: "t1", LeakedKeyID: apikey.ID(prev), LeakToken: "leak-x"},
			Plan{Action: Keep, DropPrevious: true, Leaked: true}},
		{"leaked key already gone: nothing", withPrevious(future), Desired{RotateToken: "t1", LeakedKeyID: apikey.ID(other), LeakToken: "leak-x"},
			Plan{Action: Keep, RecheckAt: now.Add(time.Hour)}},
		{"leaked key after its rotation: nothing more", intact, Desired{RotateToken: "t1", LeakedKeyID: "0123456789ab", LeakToken: "leak-x"}, Plan{Action: Keep}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Decide(tc.obs, tc.want, now); got != tc.plan {
				t.Fatalf("Decide = %+v, want %+v", got, tc.plan)
			}
		})
	}
}

func TestRemember(t *testing.T) {
	var h []string
	for i := range 20 {
		h = Remember(h, fmt.Sprint("t", i))
	}
	h = Remember(h, "t10")
	if len(h) != MaxRecentTokens || h[0] != "t4" || h[len(h)-1] != "t10" || slices.Index(h, "t10") != len(h)-1 {
		t.Fatalf("history %v", h)
	}
}
