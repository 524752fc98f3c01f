package authproxy

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"k8s.io/client-go/rest"

	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/keyindex"
	"github.com/octopods/octopods-operator/internal/testutil"
)

// usedKeys is an index holding n keys in namespace team-a, each admitted once.
func usedKeys(t *testing.T, n int) *keyindex.Index {
	t.Helper()
	ix := keyindex.New()
	for i := range n {
		key := mustGenerate(t)
		ix.Set(keyindex.Keys{Namespace: "team-a", Name: fmt.Sprintf("ws%d-api-key", i), Workspace: fmt.Sprintf("ws%d", i),
			Current: apikey.DigestOf(key), HasCurrent: true})
		if r, _ := ix.Lookup(key, time.Now()); r != keyindex.Allowed {
			t.Fatalf("key %d not admitted", i)
		}
	}
	return ix
}

// statusServer answers every status patch with code and a Status of reason,
// and counts the patches.
func statusServer(t *testing.T, code int, reason string) (*httptest.Server, *atomic.Int64) {
	var patches atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPatch || !strings.HasSuffix(r.URL.Path, "/status") {
			t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
		}
		patches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		if code >= 300 {
			_, _ = fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":%q,"code":%d}`, reason, code)
		} else {
			_, _ = w.Write([]byte(`{"apiVersion":"octopods.io/v1alpha1","kind":"WorkspaceAPIKey"}`))
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &patches
}

func TestLastUsedFlushOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name         string
		code         int
		reason       string
		result       string
		stillPending bool
	}{
		{"written", http.StatusOK, "", "ok", false},
		{"another replica recorded a later use", http.StatusUnprocessableEntity, "Invalid", "superseded", false},
		{"key deleted", http.StatusNotFound, "NotFound", "not_found", false},
		{"API server failing", http.StatusInternalServerError, "InternalError", "error", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const keys = 3
			srv, patches := statusServer(t, tc.code, tc.reason)
			octopods, err := NewOctopodsRESTClient(&rest.Config{Host: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			ix := usedKeys(t, keys)
			logs := &testutil.SyncBuffer{}
			f := &LastUsedFlusher{Index: ix, Client: octopods, Interval: time.Minute,
				Metrics: NewMetrics(ix, func() time.Duration { return 0 }, true), Log: slog.New(slog.NewJSONHandler(logs, nil))}

			f.Flush(context.Background())

			if got := patches.Load(); got != keys {
				t.Fatalf("%d patches, want one per used key (%d)", got, keys)
			}
			written := &dto.Metric{}
			if err := f.Metrics.LastUsedWrites.WithLabelValues(tc.result).Write(written); err != nil {
				t.Fatal(err)
			}
			if got := written.GetCounter().GetValue(); got != keys {
				t.Fatalf("result %q counted %v times, want %d", tc.result, got, keys)
			}
			if pending := len(ix.Pending()); (pending == keys) != tc.stillPending {
				t.Fatalf("%d uses still pending after the flush; want pending: %v", pending, tc.stillPending)
			}
			warnings := strings.Count(logs.String(), `"level":"WARN"`)
			if want := map[bool]int{true: 1, false: 0}[tc.stillPending]; warnings != want {
				t.Fatalf("%d warnings logged, want %d (one per flush, not per key):\n%s", warnings, want, logs.String())
			}
			if tc.stillPending && !strings.Contains(logs.String(), fmt.Sprintf(`"keys":%d`, keys)) {
				t.Fatalf("the warning does not say how many keys failed:\n%s", logs.String())
			}
		})
	}
}
