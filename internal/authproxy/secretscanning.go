package authproxy

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/keyindex"
	"github.com/octopods/octopods-operator/internal/secretscanning"
)

// SecretScanningPath is where GitHub posts its reports.
const SecretScanningPath = "/secret-scanning"

// leakReportWriters bounds the concurrent status patches of one report.
const leakReportWriters = 8

// Outcomes of octopods_auth_proxy_leak_reports_total: per reported token
// (true_positive, false_positive), or per request refused before any token
// was read (rejected: bad signature or body) or not recorded (error).
const (
	LeakOutcomeTruePositive  = secretscanning.TruePositive
	LeakOutcomeFalsePositive = secretscanning.FalsePositive
	LeakOutcomeRejected      = "rejected"
	LeakOutcomeError         = "error"
)

// SecretScanning receives GitHub's secret scanning partner reports. It
// believes a report only with a valid signature by one of the trusted
// public keys, matches each token by digest against every key the index
// knows (current, previous, remembered revoked), and records a match in
// its key object's status.lastLeakReport before answering: the manager then
// rotates the key (spec.leakResponse). Like the usage times, that is a
// usage field, so the proxy still cannot publish or revoke anything. A
// reported token is never logged, only the key ID of a match.
type SecretScanning struct {
	Index   *keyindex.Index
	Client  rest.Interface // octopods.io/v1alpha1
	Keys    *fileReloader[secretscanning.PublicKeys]
	Metrics *Metrics
	Log     *slog.Logger
	now     func() time.Time
}

// NewPublicKeysReloader loads GitHub's public keys from file, and again when
// it changes.
func NewPublicKeysReloader(file string, log *slog.Logger) (*fileReloader[secretscanning.PublicKeys], error) {
	return newFileReloader("secret scanning public keys", log, func() (*secretscanning.PublicKeys, error) {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		return secretscanning.ParsePublicKeys(data)
	}, file)
}

func (s *SecretScanning) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != SecretScanningPath {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST a signed report", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, secretscanning.MaxBodyBytes))
	if err != nil {
		s.reject(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over %d bytes or unreadable", secretscanning.MaxBodyBytes))
		return
	}
	if err := s.Keys.current.Load().Verify(body, r.Header.Get(secretscanning.HeaderKeyIdentifier), r.Header.Get(secretscanning.HeaderSignature)); err != nil {
		s.Log.Warn("secret scanning report refused: not signed by a trusted key", "reason", err.Error(), "key_identifier", truncate(r.Header.Get(secretscanning.HeaderKeyIdentifier), 64), "remote", r.RemoteAddr)
		s.reject(w, http.StatusUnauthorized, "signature not verified")
		return
	}
	tokens, err := secretscanning.ParseReport(body)
	if err != nil {
		s.reject(w, http.StatusBadRequest, err.Error())
		return
	}
	feedback, err := s.Report(r.Context(), tokens)
	if err != nil {
		// GitHub sends the report again: nothing recorded is lost, and a
		// match recorded twice is one report.
		s.Metrics.LeakReports.WithLabelValues(LeakOutcomeError).Inc()
		http.Error(w, "the report could not be recorded; send it again", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(feedback)
}

func (s *SecretScanning) reject(w http.ResponseWriter, status int, why string) {
	s.Metrics.LeakReports.WithLabelValues(LeakOutcomeRejected).Inc()
	http.Error(w, why, status)
}

// Report matches the tokens and records each match; the error is the
// first failed write (the feedback is then not to be sent).
func (s *SecretScanning) Report(ctx context.Context, tokens []secretscanning.Token) ([]secretscanning.Feedback, error) {
	now := s.now().Truncate(time.Second)
	feedback := make([]secretscanning.Feedback, len(tokens))
	matched := map[keyObject]octopodsv1alpha1.LeakReport{}
	for i, t := range tokens {
		digest := apikey.DigestOf(t.Token)
		feedback[i] = secretscanning.Feedback{TokenHash: hex.EncodeToString(digest[:]), TokenType: t.Type, Label: secretscanning.FalsePositive}
		if apikey.Validate(t.Token) != nil {
			s.Metrics.LeakReports.WithLabelValues(LeakOutcomeFalsePositive).Inc()
			continue // not one of ours: no lookup
		}
		match, who := s.Index.Reported(digest)
		if match == keyindex.NoMatch {
			s.Metrics.LeakReports.WithLabelValues(LeakOutcomeFalsePositive).Inc()
			continue
		}
		feedback[i].Label = secretscanning.TruePositive
		s.Metrics.LeakReports.WithLabelValues(LeakOutcomeTruePositive).Inc()
		s.Log.Warn("key reported found in public", "key_id", who.KeyID, "namespace", who.Namespace, "key_type", who.Type, "name", who.Name,
			"revoked", match == keyindex.MatchRevoked, "url", truncate(t.URL, 2048))
		// One report per key object: a live key wins over a revoked one.
		obj := keyObject{who.Namespace, who.Type, who.Name}
		if _, ok := matched[obj]; ok && match == keyindex.MatchRevoked {
			continue
		}
		matched[obj] = octopodsv1alpha1.LeakReport{Time: metav1.NewTime(now), KeyID: who.KeyID, Source: truncate("github:"+t.Source, 128), URL: truncate(t.URL, 2048)}
	}
	return feedback, s.record(ctx, matched)
}

// keyObject names one key object.
type keyObject struct{ namespace, keyType, name string }

// record writes each status.lastLeakReport, a few at a time.
func (s *SecretScanning) record(ctx context.Context, reports map[keyObject]octopodsv1alpha1.LeakReport) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		slots = make(chan struct{}, leakReportWriters)
	)
	for obj, report := range reports {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			if err := s.write(ctx, obj, report); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("record the leak of key %s in %s %s/%s: %w", report.KeyID, resourceOf(obj.keyType), obj.namespace, obj.name, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if first != nil {
		s.Log.Warn("a leak report could not be recorded; GitHub will send it again", "error", first.Error())
	}
	return first
}

func (s *SecretScanning) write(ctx context.Context, obj keyObject, report octopodsv1alpha1.LeakReport) error {
	body, _ := json.Marshal(map[string]any{"status": map[string]any{"lastLeakReport": report}})
	err := s.Client.Patch(types.MergePatchType).
		Namespace(obj.namespace).Resource(resourceOf(obj.keyType)).Name(obj.name).SubResource("status").
		Body(body).Do(ctx).Error()
	switch {
	case apierrors.IsNotFound(err):
		return nil // deleted meanwhile: its keys are revoked
	case apierrors.IsInvalid(err):
		// A later report is recorded already (times never move back).
		return nil
	}
	return err
}

// errNoPublicKeys: the endpoint needs GitHub's keys to believe anything.
var errNoPublicKeys = errors.New("--secret-scanning-bind-address needs --secret-scanning-public-keys-file (GitHub's public keys, from https://api.github.com/meta/public_keys/secret_scanning)")
