package authproxy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3" // registers the Router type
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/octopods/octopods-operator/internal/keyindex"
)

const samplesDir = "../../config/samples/gateways"

// The Envoy sample is read by Envoy's own API types (unknown fields and
// invalid values refused) and must ask the proxy over gRPC, fail closed and
// reject underscore header names.
func TestEnvoySample(t *testing.T) {
	hcm := readHCM(t, "envoy-http-connection-manager.yaml")
	if hcm.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction() != corev3.HttpProtocolOptions_REJECT_REQUEST {
		t.Fatal("underscore header names are not rejected")
	}
	authz := &extauthzv3.ExtAuthz{}
	if err := hcm.GetHttpFilters()[0].GetTypedConfig().UnmarshalTo(authz); err != nil {
		t.Fatal(err)
	}
	if authz.GetGrpcService().GetEnvoyGrpc().GetClusterName() == "" || authz.GetFailureModeAllow() || authz.GetTransportApiVersion() != corev3.ApiVersion_V3 {
		t.Fatalf("ext_authz: %v", authz)
	}
}

// readHCM reads a sample with Envoy's own API types (unknown fields and
// invalid values refused).
func readHCM(t *testing.T, file string) *hcmv3.HttpConnectionManager {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(samplesDir, file))
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	var wrapped anypb.Any
	if err := protojson.Unmarshal(js, &wrapped); err != nil {
		t.Fatalf("%s is not an Envoy config: %v", file, err)
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := wrapped.UnmarshalTo(hcm); err != nil {
		t.Fatal(err)
	}
	if err := hcm.ValidateAll(); err != nil {
		t.Fatalf("Envoy would refuse %s: %v", file, err)
	}
	return hcm
}

// The global rate limit sample is read by Envoy's API types, and its names
// are the ones the proxy's Check answer carries.
func TestEnvoyGlobalRateLimitSample(t *testing.T) {
	hcm := readHCM(t, "envoy-global-rate-limit.yaml")
	filters := hcm.GetHttpFilters()
	if len(filters) != 3 || filters[0].GetName() != "envoy.filters.http.ext_authz" || filters[1].GetName() != "envoy.filters.http.ratelimit" {
		t.Fatal("ext_authz must run first, then the rate limit filter (it reads ext_authz's metadata)")
	}
	rl := &ratelimitv3.RateLimit{}
	if err := filters[1].GetTypedConfig().UnmarshalTo(rl); err != nil || rl.ValidateAll() != nil {
		t.Fatalf("ratelimit filter: %v", err)
	}
	limits := hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetRateLimits()
	if len(limits) != 1 {
		t.Fatal("no rate_limits on the route")
	}
	action := limits[0].GetActions()[0].GetMetadata()
	override := limits[0].GetLimit().GetDynamicMetadata().GetMetadataKey()
	for name, key := range map[string]*metadatav3.MetadataKey{MetadataRateLimitKey: action.GetMetadataKey(), MetadataRateLimit: override} {
		if key.GetKey() != "envoy.filters.http.ext_authz" || len(key.GetPath()) != 1 || key.GetPath()[0].GetKey() != name {
			t.Errorf("metadata key %v: want envoy.filters.http.ext_authz / %s", key, name)
		}
	}
	// And the proxy's answer has that shape.
	res := allowed(keyindex.Identity{Namespace: "team-a", Name: "acme", Workspace: "acme", Type: keyindex.TypeWorkspace},
		keyindex.RateLimit{PerSecond: 5, Burst: 5}, &authv3.AttributeContext_HttpRequest{})
	fields := res.GetDynamicMetadata().GetFields()
	limit := fields[MetadataRateLimit].GetStructValue().GetFields()
	if fields[MetadataRateLimitKey].GetStringValue() != "team-a/workspace/acme" || limit["requests_per_unit"].GetNumberValue() != 5 || limit["unit"].GetStringValue() != "SECOND" {
		t.Fatalf("dynamic metadata %v", fields)
	}
	if _, ok := typev3.RateLimitUnit_value[limit["unit"].GetStringValue()]; !ok {
		t.Fatal("unit is not one of Envoy's RateLimitUnit names")
	}
}

// The other samples are for CRDs that cannot be had here (Istio, Envoy
// Gateway, Gateway API experimental): each must at least be well-formed
// Kubernetes YAML pointing at the proxy's gRPC port.
func TestGatewaySamplesAreWellFormed(t *testing.T) {
	for _, f := range []string{"istio.yaml", "envoy-gateway.yaml", "gateway-api.yaml"} {
		data, err := os.ReadFile(filepath.Join(samplesDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(data, []byte("9001")) {
			t.Errorf("%s does not use the grpc-authz port 9001", f)
		}
		d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var obj map[string]any
			if err := d.Decode(&obj); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if obj["apiVersion"] == nil || obj["kind"] == nil || obj["metadata"] == nil {
				t.Errorf("%s: an object without apiVersion, kind or metadata: %v", f, obj)
			}
		}
	}
}
