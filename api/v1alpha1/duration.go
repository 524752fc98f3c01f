package v1alpha1

import (
	"encoding/json"
	"strconv"
	"time"
)

// Duration is a duration field of a spec. The schema refuses what Go's
// time.ParseDuration refuses, but objects stored before it did, or written
// to etcd behind the API server's back, must not fail the list of every
// other object: where metav1.Duration returns a decoding error, Duration
// decodes and keeps the stored text in Invalid, and the reconcilers report
// that one object (condition InvalidSpec, Warning event, metric).
// +kubebuilder:validation:Type=string
type Duration struct {
	time.Duration `json:"-"`
	// Invalid is the stored value when it is not a Go duration; then
	// Duration is zero and the object must not be acted on.
	Invalid string `json:"-"`
}

// UnmarshalJSON never fails on a value: see Duration.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		*d = Duration{Invalid: string(b)}
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		*d = Duration{Invalid: s}
		return nil
	}
	*d = Duration{Duration: v}
	return nil
}

// MarshalJSON writes the duration as Go prints it, or the invalid text as
// it was stored, so that a status write never rewrites the spec.
func (d Duration) MarshalJSON() ([]byte, error) {
	if d.Invalid != "" {
		return json.Marshal(d.Invalid)
	}
	return json.Marshal(d.String())
}

// ToUnstructured is what the unstructured converter writes.
func (d Duration) ToUnstructured() any {
	if d.Invalid != "" {
		return d.Invalid
	}
	return d.String()
}

// OpenAPISchemaType and OpenAPISchemaFormat: a string, like metav1.Duration.
func (Duration) OpenAPISchemaType() []string { return []string{"string"} }

// OpenAPISchemaFormat is empty: the OpenAPI "duration" format accepts
// spellings (30d, 1 hour) that Go refuses; the CRD's rules say what Go takes.
func (Duration) OpenAPISchemaFormat() string { return "" }

// InvalidFields names the spec's fields that hold what Go cannot decode,
// each as "spec.<field>: <why and what to do>"; none for a valid spec.
func (s *KeySettings) InvalidFields() []string {
	var out []string
	for _, f := range []struct {
		name, example string
		d             *Duration
	}{
		{"rotationGracePeriod", "1h or 30m (0s: the old key stops at once)", s.RotationGracePeriod},
		{"rotationInterval", "720h for 30 days", s.RotationInterval},
	} {
		if f.d != nil && f.d.Invalid != "" {
			out = append(out, "spec."+f.name+": "+strconv.Quote(f.d.Invalid)+" is not a duration: use h, m or s, for example "+f.example)
		}
	}
	return out
}
