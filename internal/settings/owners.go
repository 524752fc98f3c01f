package settings

import (
	"context"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
)

// OwnerRow is one channel or WhatsApp Business Account with its key, as
// the page's Channels view shows it. It never holds a key.
type OwnerRow struct {
	Namespace   string `json:"namespace"`
	Name        string `json:"name"`
	Target      string `json:"target"` // what the buttons and `kubectl octopods` take
	DisplayName string `json:"displayName"`
	Workspace   string `json:"workspace"`
	// Type is SMS, VBM or Telegram, or WhatsApp for an account.
	Type string `json:"type"`
	// Label is the key's card title, as the product's channel pages say it.
	Label        string   `json:"label"`
	PhoneNumbers []string `json:"phoneNumbers,omitempty"`
	KeyState
}

// CardLabel is the title of a key's card on the product's channel pages.
func CardLabel(channelType string) string {
	switch channelType {
	case string(octopodsv1alpha1.ChannelSMS):
		return "Twilio API Key"
	case string(octopodsv1alpha1.ChannelVBM):
		return "VBM API Key"
	case string(octopodsv1alpha1.ChannelTelegram):
		return "Telegram API Key"
	}
	return "WhatsApp Business API Key"
}

// OwnerRows lists the channels (kind ChannelKey) or WhatsApp Business
// Accounts (WhatsAppKey) of namespace ("": every namespace) with their
// keys, sorted by namespace and name.
func OwnerRows(ctx context.Context, c client.Reader, kind octopodsv1alpha1.KeyKind, namespace string) ([]OwnerRow, error) {
	owners := kind.NewOwnerList()
	t := Target{Kind: kind}
	if err := c.List(ctx, owners, client.InNamespace(namespace)); err != nil {
		return nil, explain(err, "list", t.ownerResource(), namespace)
	}
	keys := map[string]octopodsv1alpha1.KeyObject{}
	keyList := kind.NewKeyList()
	if err := c.List(ctx, keyList, client.InNamespace(namespace)); err != nil {
		return nil, explain(err, "list", kind.Resource, namespace)
	}
	items, _ := meta.ExtractList(keyList) // typed lists: cannot fail
	for _, item := range items {
		k := item.(octopodsv1alpha1.KeyObject)
		keys[k.GetNamespace()+"/"+k.GetName()] = k
	}
	ownerItems, _ := meta.ExtractList(owners)
	rows := make([]OwnerRow, 0, len(ownerItems))
	for _, item := range ownerItems {
		o := item.(octopodsv1alpha1.KeyOwner)
		sc := o.KeyScope()
		r := OwnerRow{Namespace: o.GetNamespace(), Name: o.GetName(), Workspace: sc.Workspace, Type: string(sc.ChannelType)}
		r.Target = Target{Kind: kind, Name: o.GetName()}.String()
		switch o := o.(type) {
		case *octopodsv1alpha1.Channel:
			r.DisplayName = o.Spec.DisplayName
		case *octopodsv1alpha1.WhatsAppBusinessAccount:
			r.DisplayName, r.Type, r.PhoneNumbers = o.Spec.DisplayName, "WhatsApp", o.Spec.PhoneNumbers
		}
		r.Label = CardLabel(string(sc.ChannelType))
		if k := keys[o.GetNamespace()+"/"+octopodsv1alpha1.KeyName(o.GetName())]; k != nil {
			r.KeyState = keyStateOf(k)
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool {
		return strings.Compare(rows[i].Namespace+"/"+rows[i].Name, rows[j].Namespace+"/"+rows[j].Name) < 0
	})
	return rows, nil
}
