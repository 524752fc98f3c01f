package v1alpha1

import (
	"reflect"
	"strings"
)

// Who writes a status field, as its `octopods` struct tag says. The
// admission policy that keeps publishing the manager's alone, the manager's
// "usage-only update" predicate and the proxy's usage writes all derive
// from these tags; a status field without one fails the api tests.
const (
	// StatusOwnerOperator: only the manager's identity may change the field.
	StatusOwnerOperator = "operator"
	// StatusOwnerUsage: what the auth proxies record of a key's use.
	StatusOwnerUsage = "usage"
)

// StatusField is one status field by its JSON name and its owner.
type StatusField struct {
	JSON, Owner string
	index       int
}

// StatusFields lists the fields of a status struct type (pass a zero
// value), in declaration order. Owner is "" for a field without a tag.
func StatusFields(status any) []StatusField {
	t := reflect.TypeOf(status)
	out := make([]StatusField, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		out = append(out, StatusField{JSON: name, Owner: f.Tag.Get("octopods"), index: i})
	}
	return out
}

// StatusFieldsOwnedBy are the JSON names of the fields that owner writes.
func StatusFieldsOwnedBy(status any, owner string) []string {
	var names []string
	for _, f := range StatusFields(status) {
		if f.Owner == owner {
			names = append(names, f.JSON)
		}
	}
	return names
}

var workspaceAPIKeyUsage = func() []int {
	var idx []int
	for _, f := range StatusFields(APIKeyStatus{}) {
		if f.Owner == StatusOwnerUsage {
			idx = append(idx, f.index)
		}
	}
	return idx
}()

// ClearUsage zeroes the usage fields of s, leaving what the operator owns.
func (s *APIKeyStatus) ClearUsage() {
	v := reflect.ValueOf(s).Elem()
	for _, i := range workspaceAPIKeyUsage {
		f := v.Field(i)
		f.Set(reflect.Zero(f.Type()))
	}
}

// CopyUsage sets the usage fields of s to those of from, leaving what the
// operator owns: a status the operator computes keeps what the proxies wrote.
func (s *APIKeyStatus) CopyUsage(from *APIKeyStatus) {
	dst, src := reflect.ValueOf(s).Elem(), reflect.ValueOf(from).Elem()
	for _, i := range workspaceAPIKeyUsage {
		dst.Field(i).Set(src.Field(i))
	}
}
