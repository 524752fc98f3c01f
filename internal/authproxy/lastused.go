package authproxy

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/keyindex"
)

// DefaultLastUsedFlushInterval writes each used key's status.lastUsedTime at
// most about once a minute, never per request.
const DefaultLastUsedFlushInterval = time.Minute

// DefaultLastUsedRefreshInterval is how old a recorded lastUsedTime must be
// before a key in constant use writes it again (keyindex.PendingAt).
const DefaultLastUsedRefreshInterval = time.Hour

// DefaultLastUsedWritesPerSecond bounds one replica's usage writes. The
// proxy reads KeyDigestSlices, which carry no lastUsedTime, so it no longer
// learns the uses other replicas (or its own previous run) recorded: a
// replica writes each key in constant use once per refresh interval (28 a
// second at 100k keys and an hour), and a restarted one would write every
// key in use at its first flush (1,667 a second at 100k). The bound spreads
// that first round over half an hour instead; sightings go first.
const DefaultLastUsedWritesPerSecond = 50

// lastUsedWriters bounds the concurrent status patches of one flush.
const lastUsedWriters = 4

// LastUsedFlusher writes the keys this replica admitted into their
// WorkspaceAPIKey's status.lastUsedTime with a merge patch of that one field.
// Replicas need no coordination: the CRD refuses a write that would move the
// time backwards.
type LastUsedFlusher struct {
	Index    *keyindex.Index
	Client   rest.Interface // for the octopods.io/v1alpha1 group
	Interval time.Duration
	// Refresh coarsens the current key's lastUsedTime (0: every flush).
	Refresh time.Duration
	// MaxWritesPerSecond bounds the writes of a flush to this rate over
	// Interval (0: no bound); the rest stay pending for the next flush.
	MaxWritesPerSecond float64
	Metrics            *Metrics
	Log                *slog.Logger
}

// Run flushes every Interval until ctx ends, then once more.
func (f *LastUsedFlusher) Run(ctx context.Context) {
	every(ctx, f.Interval, func() { f.Flush(ctx) })
	final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	f.Flush(final)
}

// Flush writes every pending use once. Failures are logged once per flush,
// not once per key: with the API server gone, a busy proxy would otherwise
// log a line for every key it admitted.
func (f *LastUsedFlusher) Flush(ctx context.Context) {
	pending := f.bounded(f.Index.PendingAt(time.Now(), f.Refresh))
	work := make(chan keyindex.Usage)
	var (
		wg       sync.WaitGroup
		failed   atomic.Int64
		firstErr atomic.Pointer[error]
	)
	for range min(lastUsedWriters, len(pending)) {
		wg.Go(func() {
			for u := range work {
				if err := f.write(ctx, u); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	for _, u := range pending {
		work <- u
	}
	close(work)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		f.Log.Warn("writing lastUsedTime failed; kept for the next flush", "keys", n, "of", len(pending), "error", (*firstErr.Load()).Error())
	}
}

// bounded keeps the pending uses one flush may write, those with a
// sighting (a revoked key, a disallowed source, a rate limit) or a previous
// key's use first; the others stay pending.
func (f *LastUsedFlusher) bounded(pending []keyindex.Usage) []keyindex.Usage {
	limit := int(f.MaxWritesPerSecond * f.Interval.Seconds())
	if f.MaxWritesPerSecond <= 0 || len(pending) <= limit {
		return pending
	}
	slices.SortStableFunc(pending, func(a, b keyindex.Usage) int { return cmp.Compare(routine(a), routine(b)) })
	f.Metrics.LastUsedWrites.WithLabelValues("deferred").Add(float64(len(pending) - limit))
	return pending[:max(limit, 1)]
}

// routine: 1 for a use that only moves the current key's lastUsedTime.
func routine(u keyindex.Usage) int {
	if u.PreviousLastUsed.IsZero() && u.RevokedUse == nil && u.DisallowedSourceUse == nil && u.RateLimited == nil {
		return 1
	}
	return 0
}

// write patches one key's usage fields and returns an error only for a
// failure worth retrying; the use then stays pending.
func (f *LastUsedFlusher) write(ctx context.Context, u keyindex.Usage) error {
	fields := usageFields(u)
	err := f.patch(ctx, u, fields)
	if apierrors.IsInvalid(err) && len(fields) > 1 {
		// The CRD refuses a patch moving any of its times backwards: another
		// replica recorded a later use of one key. Write each field alone,
		// so that one superseded time does not lose the others.
		var errs []error
		for _, field := range fields {
			if err := f.patch(ctx, u, []string{field}); !apierrors.IsInvalid(err) {
				errs = append(errs, err)
			}
		}
		err = errors.Join(errs...)
	}
	switch {
	case err == nil:
		u.Flushed()
		f.Metrics.LastUsedWrites.WithLabelValues("ok").Inc()
	case apierrors.IsInvalid(err):
		// The CRD keeps lastUsedTime from moving backwards: another replica
		// already recorded a later use.
		u.Flushed()
		f.Metrics.LastUsedWrites.WithLabelValues("superseded").Inc()
	case apierrors.IsNotFound(err):
		// The key is gone (or its Secret is not the operator's): nothing to record.
		u.Flushed()
		f.Metrics.LastUsedWrites.WithLabelValues("not_found").Inc()
	default:
		f.Metrics.LastUsedWrites.WithLabelValues("error").Inc()
		return err
	}
	return nil
}

// usageFields are the status fields, as JSON members, that u brings.
func usageFields(u keyindex.Usage) []string {
	fields := make([]string, 0, 5)
	if !u.LastUsed.IsZero() {
		fields = append(fields, fmt.Sprintf(`"lastUsedTime":%q`, u.LastUsed.UTC().Format(time.RFC3339)))
	}
	if !u.PreviousLastUsed.IsZero() {
		fields = append(fields, fmt.Sprintf(`"previousKeyLastUsedTime":%q`, u.PreviousLastUsed.UTC().Format(time.RFC3339)))
	}
	for _, f := range []struct {
		name string
		s    *keyindex.Sighting
	}{{"lastRevokedKeyUse", u.RevokedUse}, {"lastDisallowedSourceUse", u.DisallowedSourceUse}, {"lastRateLimited", u.RateLimited}} {
		if name, s := f.name, f.s; s != nil {
			use, _ := json.Marshal(octopodsv1alpha1.KeyUse{Time: metav1.NewTime(s.Time), KeyID: s.KeyID, ClientAddress: s.ClientAddress})
			fields = append(fields, fmt.Sprintf("%q:%s", name, use))
		}
	}
	return fields
}

// patch merges fields into the key's status.
func (f *LastUsedFlusher) patch(ctx context.Context, u keyindex.Usage, fields []string) error {
	body := []byte(`{"status":{` + strings.Join(fields, ",") + `}}`)
	return f.Client.Patch(types.MergePatchType).
		Namespace(u.Namespace).Resource(resourceOf(u.Type)).Name(u.Name).SubResource("status").
		Body(body).Do(ctx).Error()
}

// resourceOf is the resource of the key objects of keyType.
func resourceOf(keyType string) string {
	for _, k := range octopodsv1alpha1.KeyKinds {
		if k.KeyType == keyType {
			return k.Resource
		}
	}
	return octopodsv1alpha1.WorkspaceKey.Resource
}
