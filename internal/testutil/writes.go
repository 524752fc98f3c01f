package testutil

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// APIServerMetrics reads the API server's own /metrics.
func APIServerMetrics(ctx context.Context, cfg *rest.Config) (map[string]*dto.MetricFamily, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	raw, err := cs.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the API server's /metrics: %w", err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(bytes.NewReader(raw))
}

// WriteCounts are an API server's successful write requests, by
// "VERB resource[/subresource]".
type WriteCounts map[string]int

// APIServerWrites reads apiserver_request_total from the API server's own
// /metrics: what every client wrote, counted where it landed.
func APIServerWrites(ctx context.Context, cfg *rest.Config) (WriteCounts, error) {
	return APIServerRequests(ctx, cfg, false, "POST", "PUT", "PATCH", "DELETE", "APPLY")
}

// APIServerRequests counts the requests of the given verbs (GET, LIST,
// WATCH, POST, ...) by "VERB resource[/subresource]", refused ones too
// when withRefused.
func APIServerRequests(ctx context.Context, cfg *rest.Config, withRefused bool, verbs ...string) (WriteCounts, error) {
	families, err := APIServerMetrics(ctx, cfg)
	if err != nil {
		return nil, err
	}
	out := WriteCounts{}
	for _, m := range families["apiserver_request_total"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if !slices.Contains(verbs, labels["verb"]) || (!withRefused && labels["code"] >= "400") {
			continue
		}
		key := labels["verb"] + " " + labels["resource"]
		if labels["subresource"] != "" {
			key += "/" + labels["subresource"]
		}
		out[key] += int(m.GetCounter().GetValue())
	}
	return out, nil
}

// Minus is what was written since before.
func (w WriteCounts) Minus(before WriteCounts) WriteCounts {
	out := WriteCounts{}
	for k, v := range w {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// Total is every write counted.
func (w WriteCounts) Total() int {
	t := 0
	for _, v := range w {
		t += v
	}
	return t
}

func (w WriteCounts) String() string {
	keys := make([]string, 0, len(w))
	for k, v := range w {
		if v != 0 {
			keys = append(keys, fmt.Sprintf("%s %d", k, v))
		}
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}
