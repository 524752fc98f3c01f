package settings

import (
	"fmt"
	"strings"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
)

// Target is the owner whose key a command acts on: a workspace ("acme"),
// a channel ("channel/sms-1") or a WhatsApp Business Account
// ("whatsapp/waba"). Every action takes one, so the three key types share
// each action.
type Target struct {
	Kind octopodsv1alpha1.KeyKind
	// Name is the owner's name.
	Name string
}

// Workspace is the target of a workspace's key.
func Workspace(name string) Target { return Target{Kind: octopodsv1alpha1.WorkspaceKey, Name: name} }

// targetPrefixes are how a person names the owner kinds on the command line.
var targetPrefixes = map[string]octopodsv1alpha1.KeyKind{
	"channel":   octopodsv1alpha1.ChannelKey,
	"whatsapp":  octopodsv1alpha1.WhatsAppKey,
	"workspace": octopodsv1alpha1.WorkspaceKey,
}

// ParseTarget reads "NAME", "workspace/NAME", "channel/NAME" or
// "whatsapp/NAME".
func ParseTarget(arg string) (Target, error) {
	prefix, name, found := strings.Cut(arg, "/")
	if !found {
		return Workspace(arg), nil
	}
	kind, ok := targetPrefixes[prefix]
	if !ok || name == "" || strings.Contains(name, "/") {
		return Target{}, fmt.Errorf("%q: name a workspace (NAME), a channel (channel/NAME) or a WhatsApp Business Account (whatsapp/NAME)", arg)
	}
	return Target{Kind: kind, Name: name}, nil
}

// String is how a person names the target: what ParseTarget reads.
func (t Target) String() string {
	switch t.Kind.Kind {
	case octopodsv1alpha1.ChannelKey.Kind:
		return "channel/" + t.Name
	case octopodsv1alpha1.WhatsAppKey.Kind:
		return "whatsapp/" + t.Name
	}
	return t.Name
}

// Noun names the owner's kind in a sentence.
func (t Target) Noun() string { return t.Kind.OwnerNoun }

// ownerResource is the owner's resource, for RBAC advice.
func (t Target) ownerResource() string {
	return strings.ToLower(t.Kind.OwnerKind) + "s"
}
