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

// ParseTarget reads "NAME", or "TYPE/NAME" with a key type as the proxy
// names it: "workspace/NAME", "channel/NAME" or "whatsapp/NAME".
func ParseTarget(arg string) (Target, error) {
	keyType, name, found := strings.Cut(arg, "/")
	if !found {
		return Workspace(arg), nil
	}
	for _, kind := range octopodsv1alpha1.KeyKinds {
		if kind.KeyType == keyType && name != "" && !strings.Contains(name, "/") {
			return Target{Kind: kind, Name: name}, nil
		}
	}
	return Target{}, fmt.Errorf("%q: name a workspace (NAME), a channel (channel/NAME) or a WhatsApp Business Account (whatsapp/NAME)", arg)
}

// String is how a person names the target: what ParseTarget reads.
func (t Target) String() string {
	if t.Kind.KeyType == octopodsv1alpha1.KeyTypeWorkspace {
		return t.Name
	}
	return t.Kind.KeyType + "/" + t.Name
}

// listWords are the `kubectl octopods get` arguments that list the owners
// of a key kind (workspaces need none).
var listWords = map[string]string{octopodsv1alpha1.ChannelKey.Kind: "channels", octopodsv1alpha1.WhatsAppKey.Kind: "whatsapp"}

// ListWord is the `get` argument that lists the owners of kind's keys
// ("" for workspaces: `get` alone lists them).
func ListWord(kind octopodsv1alpha1.KeyKind) string { return listWords[kind.Kind] }

// KindListed is the key kind whose owners `get word` lists, if any.
func KindListed(word string) (octopodsv1alpha1.KeyKind, bool) {
	for _, kind := range octopodsv1alpha1.KeyKinds {
		if w := ListWord(kind); w != "" && w == word {
			return kind, true
		}
	}
	return octopodsv1alpha1.KeyKind{}, false
}

// Noun names the owner's kind in a sentence.
func (t Target) Noun() string { return t.Kind.OwnerNoun }

// ownerResource is the owner's resource, for RBAC advice.
func (t Target) ownerResource() string {
	return strings.ToLower(t.Kind.OwnerKind) + "s"
}
