package scope

import (
	"strings"
	"testing"
)

type key struct{ typ, channelType string }

var (
	workspaceKey = key{TypeWorkspace, ""}
	smsKey       = key{TypeChannel, "SMS"}
	vbmKey       = key{TypeChannel, "VBM"}
	telegramKey  = key{TypeChannel, "Telegram"}
	whatsAppKey  = key{TypeWhatsApp, ""}
	everyKey     = []key{workspaceKey, smsKey, vbmKey, telegramKey, whatsAppKey}
)

// TestDefaultRules: each path, in every spelling, admits exactly the keys
// Octopods' API gives its endpoint family.
func TestDefaultRules(t *testing.T) {
	whatsApp := []key{whatsAppKey}
	sms := []key{workspaceKey, smsKey}
	other := []key{workspaceKey}
	tests := []struct {
		path  string
		admit []key
	}{
		{"/api/v1/whatsapp/messages", whatsApp},
		{"/api/v1/whatsapp", whatsApp},
		{"/api/v1/whatsapp/", whatsApp},
		{"/api/v1/sms/send", sms},
		{"/api/v1/vbm/send", []key{workspaceKey, vbmKey}},
		{"/api/v1/telegram/send", []key{workspaceKey, telegramKey}},
		{"/api/v1/workspace", other},
		{"/", other},
		{"/api/v1/smsx/send", other}, // a prefix ends at a segment boundary
		{"/api/v1/whatsappx", other},
		// Spellings an upstream may read as /api/v1/whatsapp/:
		{"/api/v1/WhatsApp/messages", whatsApp},
		{"/API/V1/WHATSAPP/", whatsApp},
		{"/api/v1/sms/../whatsapp/messages", whatsApp},
		{"/api/v1/sms/..%2Fwhatsapp/messages", whatsApp},
		{"/api/v1/sms%2F..%2Fwhatsapp/messages", whatsApp},
		{"/api/v1/sms/%2e%2e/whatsapp/messages", whatsApp},
		{"/api/v1%2Fwhatsapp/messages", whatsApp},
		{"/api/v1/%77hatsapp/messages", whatsApp},
		{"/api/v1/sms%252F..%252Fwhatsapp/messages", whatsApp}, // decoded twice downstream
		{"//api//v1//whatsapp//messages", whatsApp},
		{"/api/v1/./whatsapp/messages", whatsApp},
		{"/api/v1/whatsapp./messages", whatsApp},
		{"/api/v1/whatsapp.../messages", whatsApp},
		{"/api/v1/whatsapp;jsessionid=1/messages", whatsApp},
		{`/api/v1\whatsapp\messages`, whatsApp},
		{"/api/v1/sms/./../whatsapp", whatsApp},
		{"/../../api/v1/whatsapp/", whatsApp},
		// And the same tricks cannot take a WhatsApp key to SMS:
		{"/api/v1/whatsapp/../sms/send", sms},
		{"/api/v1/SMS./send", sms},
		// Unreadable paths admit no key.
		{"/api/v1/%zz/whatsapp", nil},
		{"/api/v1/whatsapp%00/x", nil},
		{"/api/v1/sms%2525252F..%2525252Fwhatsapp", nil}, // still escaped after 3 rounds
	}
	r := Default()
	for _, tc := range tests {
		for _, k := range everyKey {
			want := false
			for _, a := range tc.admit {
				want = want || a == k
			}
			got, d := r.Allows(tc.path, k.typ, k.channelType)
			if got != want {
				t.Errorf("%s with a %s %s key: admitted %v, want %v (rule: %s)", tc.path, k.channelType, k.typ, got, want, d.Needs())
			}
			if !got && !strings.Contains(string(d.Refusal()), `"error":"key_scope_mismatch"`) {
				t.Errorf("%s: refusal body %s", tc.path, d.Refusal())
			}
		}
	}
}

func TestRefusalNamesTheKeyTypeThePathNeeds(t *testing.T) {
	r := Default()
	for path, needs := range map[string]string{
		"/api/v1/whatsapp/x": "WhatsApp Business key",
		"/api/v1/sms/x":      "workspace key or SMS channel key",
		"/api/v1/other":      "workspace key",
	} {
		_, d := r.Allows(path, TypeChannel, "VBM")
		if d.Needs() != needs || !strings.Contains(string(d.Refusal()), "this path takes a "+needs) {
			t.Errorf("%s: needs %q, body %s; want %q", path, d.Needs(), d.Refusal(), needs)
		}
	}
}

func TestAllowsDoesNotAllocateForANormalPath(t *testing.T) {
	r := Default()
	allocs := testing.AllocsPerRun(100, func() {
		r.Allows("/api/v1/sms/send/bulk", TypeChannel, "SMS")
		r.Allows("/api/v1/whatsapp/messages", TypeChannel, "SMS")
	})
	if allocs != 0 {
		t.Errorf("Allows allocated %v times per call on normal paths", allocs)
	}
}

func TestParse(t *testing.T) {
	good := `
rules:
- pathPrefix: /api/v2/whatsapp/
  keys: [{type: whatsapp}]
- pathPrefix: /api/v1/sms/bulk/
  keys: [{type: workspace}]
- pathPrefix: /api/v1/sms/
  keys: [{type: channel, channelType: SMS}]
default: []
`
	r, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path  string
		k     key
		admit bool
	}{
		{"/api/v2/whatsapp/x", whatsAppKey, true},
		{"/api/v1/sms/bulk/x", smsKey, false}, // the longer prefix wins
		{"/api/v1/sms/bulk/x", workspaceKey, true},
		{"/api/v1/sms/x", smsKey, true},
		{"/api/v1/sms/x", workspaceKey, false},
		{"/anything", workspaceKey, false}, // default: [] closes every other path
	} {
		if got, _ := r.Allows(tc.path, tc.k.typ, tc.k.channelType); got != tc.admit {
			t.Errorf("%s with %v: %v, want %v", tc.path, tc.k, got, tc.admit)
		}
	}
	for in, wantErr := range map[string]string{
		"rules: [{pathPrefix: api/v1/x/, keys: [{type: workspace}]}]":                                        "rules[0].pathPrefix",
		"rules: [{pathPrefix: /api/v1/x/, keys: [{type: admin}]}]":                                           "rules[0].keys[0].type",
		"rules: [{pathPrefix: /api/v1/x/, keys: [{type: workspace, channelType: SMS}]}]":                     "only a channel grant",
		"rules: [{pathPrefix: /api/v1/x/, keys: [{type: channel, channelType: Fax}]}]":                       "use SMS, VBM or Telegram",
		"rules: [{pathPrefix: /api/v1/x/, keys: []}]":                                                        "rules[0].keys: empty",
		"rules: [{pathPrefix: /a/, keys: [{type: workspace}]}, {pathPrefix: /A, keys: [{type: workspace}]}]": "same prefix",
		"rules: [{pathPrefix: /, keys: [{type: workspace}]}]":                                                "set default",
		"rulez: []": "unknown field",
	} {
		if _, err := Parse([]byte(in)); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("Parse(%s) = %v, want an error saying %q", in, err, wantErr)
		}
	}
}

func BenchmarkAllows(b *testing.B) {
	r := Default()
	b.ReportAllocs()
	for b.Loop() {
		r.Allows("/api/v1/whatsapp/messages", TypeWhatsApp, "")
	}
}
