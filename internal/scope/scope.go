// Package scope decides which key types may call a path: Octopods' API
// gives each endpoint family to one key type ("use the narrowest-scoped
// key"). Rules are matched against the path after normalisation, so that
// no spelling an upstream reads as /api/v1/whatsapp/ (case, "..", "%2F",
// "//", a trailing dot, a ";" parameter, a backslash) reaches it with a
// key the rule does not name. Pure: no I/O; Allows does not allocate for a
// path already in normal form.
package scope

import (
	"fmt"
	"net/url"
	"path"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// Key types, as the index and X-Octopods-Key-Type name them.
const (
	TypeWorkspace = "workspace"
	TypeChannel   = "channel"
	TypeWhatsApp  = "whatsapp"
)

// Grant is one key type a rule admits; a channel grant may name the one
// channel type it admits ("" = every channel type).
type Grant struct {
	Type        string `json:"type"`
	ChannelType string `json:"channelType,omitempty"`
}

// Rule gives the paths under PathPrefix to the keys it grants.
type Rule struct {
	PathPrefix string  `json:"pathPrefix"`
	Keys       []Grant `json:"keys"`
}

// File is the --scope-rules file: the rules, and what every other path
// takes (default: workspace keys only).
type File struct {
	Rules   []Rule  `json:"rules"`
	Default []Grant `json:"default,omitempty"`
}

// Rules are compiled scope rules.
type Rules struct {
	rules []compiled // longest prefix first
	other compiled   // every other path
	// unreadable answers a path that cannot be normalised: no key.
	unreadable compiled
}

type compiled struct {
	prefix string // normalised, without a trailing "/"
	grants []Grant
	// Refusal is the fixed JSON body of a key_scope_mismatch here.
	refusal []byte
	needs   string
}

// DefaultFile mirrors Octopods' API documentation.
var DefaultFile = File{
	Rules: []Rule{
		{PathPrefix: "/api/v1/whatsapp/", Keys: []Grant{{Type: TypeWhatsApp}}},
		{PathPrefix: "/api/v1/sms/", Keys: []Grant{{Type: TypeWorkspace}, {Type: TypeChannel, ChannelType: "SMS"}}},
		{PathPrefix: "/api/v1/vbm/", Keys: []Grant{{Type: TypeWorkspace}, {Type: TypeChannel, ChannelType: "VBM"}}},
		{PathPrefix: "/api/v1/telegram/", Keys: []Grant{{Type: TypeWorkspace}, {Type: TypeChannel, ChannelType: "Telegram"}}},
	},
	Default: []Grant{{Type: TypeWorkspace}},
}

// Default returns the built-in rules.
func Default() *Rules {
	r, err := Compile(DefaultFile)
	if err != nil {
		panic(err) // the built-in table is tested
	}
	return r
}

// Parse reads a --scope-rules file (YAML or JSON).
func Parse(data []byte) (*Rules, error) {
	var f File
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("scope rules: %w", err)
	}
	return Compile(f)
}

// Compile checks and compiles f. Every error names the rule and the field.
func Compile(f File) (*Rules, error) {
	r := &Rules{}
	seen := map[string]bool{}
	for i, rule := range f.Rules {
		where := fmt.Sprintf("rules[%d]", i)
		if !strings.HasPrefix(rule.PathPrefix, "/") {
			return nil, fmt.Errorf("%s.pathPrefix %q: must start with /, for example /api/v1/sms/", where, rule.PathPrefix)
		}
		prefix, ok := normalise(rule.PathPrefix)
		if !ok || prefix == "/" {
			return nil, fmt.Errorf("%s.pathPrefix %q: must be a path below /, without escapes, for example /api/v1/sms/ (set default for every other path)", where, rule.PathPrefix)
		}
		if seen[prefix] {
			return nil, fmt.Errorf("%s.pathPrefix %q: another rule has the same prefix; merge their keys", where, rule.PathPrefix)
		}
		seen[prefix] = true
		c, err := compile(prefix, rule.Keys, where+".keys")
		if err != nil {
			return nil, err
		}
		r.rules = append(r.rules, c)
	}
	// Longest first: /api/v1/sms/bulk/ before /api/v1/sms/.
	slices.SortStableFunc(r.rules, func(a, b compiled) int { return len(b.prefix) - len(a.prefix) })
	other := f.Default
	if other == nil {
		other = []Grant{{Type: TypeWorkspace}}
	}
	var err error
	if r.other, err = compile("", other, "default"); err != nil {
		return nil, err
	}
	r.unreadable = compiled{needs: "a readable path", refusal: refusalBody("a readable path: the path could not be normalised")}
	return r, nil
}

func compile(prefix string, grants []Grant, where string) (compiled, error) {
	if len(grants) == 0 && where != "default" {
		return compiled{}, fmt.Errorf("%s: empty; name at least one key type (workspace, channel or whatsapp)", where)
	}
	var names []string
	for j, g := range grants {
		switch {
		case g.Type != TypeWorkspace && g.Type != TypeChannel && g.Type != TypeWhatsApp:
			return compiled{}, fmt.Errorf("%s[%d].type %q: use workspace, channel or whatsapp", where, j, g.Type)
		case g.ChannelType != "" && g.Type != TypeChannel:
			return compiled{}, fmt.Errorf("%s[%d].channelType: only a channel grant takes a channelType", where, j)
		case g.ChannelType != "" && g.ChannelType != "SMS" && g.ChannelType != "VBM" && g.ChannelType != "Telegram":
			return compiled{}, fmt.Errorf("%s[%d].channelType %q: use SMS, VBM or Telegram", where, j, g.ChannelType)
		}
		name := g.Type + " key"
		if g.ChannelType != "" {
			name = g.ChannelType + " channel key"
		}
		if g.Type == TypeWhatsApp {
			name = "WhatsApp Business key"
		}
		names = append(names, name)
	}
	needs := strings.Join(names, " or ")
	if needs == "" {
		needs = "no key (this path is closed)"
	}
	return compiled{prefix: prefix, grants: grants, needs: needs, refusal: refusalBody(needs)}, nil
}

func refusalBody(needs string) []byte {
	return fmt.Appendf(nil, `{"error":"key_scope_mismatch","message":%q}`+"\n", "this path takes a "+needs)
}

// Decision is which rule a path falls under.
type Decision struct{ c *compiled }

// Refusal is the JSON body of a key_scope_mismatch for this path (fixed:
// answering allocates nothing for it).
func (d Decision) Refusal() []byte { return d.c.refusal }

// Needs says which key types the path takes, for logs.
func (d Decision) Needs() string { return d.c.needs }

// Allows reports whether a key of keyType (and channelType, for a channel
// key) may call path (the request's path, still escaped as sent), and the
// rule that decided.
func (r *Rules) Allows(rawPath, keyType, channelType string) (bool, Decision) {
	c := r.match(rawPath)
	for _, g := range c.grants {
		if g.Type == keyType && (g.ChannelType == "" || g.ChannelType == channelType) {
			return true, Decision{c}
		}
	}
	return false, Decision{c}
}

// match returns the rule for rawPath: the longest prefix of its normal
// form, or the default.
func (r *Rules) match(rawPath string) *compiled {
	p := rawPath
	if !isNormal(p) {
		var ok bool
		if p, ok = normalise(p); !ok {
			return &r.unreadable
		}
	}
	for i := range r.rules {
		c := &r.rules[i]
		if strings.HasPrefix(p, c.prefix) && (len(p) == len(c.prefix) || p[len(c.prefix)] == '/') {
			return c
		}
	}
	return &r.other
}

// isNormal reports whether p is already what normalise returns, without
// allocating: lower case, no escapes, no empty, "." or ".." segment, no
// segment ending in ".", no ";" or "\", no trailing "/" past the root.
func isNormal(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !special[c] {
			continue
		}
		switch {
		case c == '/' && i+1 < len(p) && p[i+1] == '/':
			return false
		case c == '.' && (i+1 == len(p) || p[i+1] == '/'):
			return false // "x.", ".", ".." segments
		case c != '/' && c != '.':
			return false // upper case, "%", ";", "\\", non-ASCII
		}
	}
	return true
}

// special marks the bytes isNormal looks at twice: one load per byte.
var special = func() (t [256]bool) {
	for c := range 256 {
		t[c] = 'A' <= c && c <= 'Z' || c == '%' || c == ';' || c == '\\' || c >= 0x80 || c == '/' || c == '.'
	}
	return t
}()

// maxUnescape bounds the rounds of percent-decoding: an upstream behind
// another proxy may decode twice ("%252F"), never more in practice.
const maxUnescape = 3

// normalise returns the normal form of a path: percent-decoded (up to
// maxUnescape rounds), "\" read as "/", ";" parameters dropped from each
// segment, dot segments resolved, "//" collapsed, trailing dots dropped
// from each segment, lower case, no trailing "/" (but the root). ok is
// false for a path that stays malformed.
func normalise(p string) (string, bool) {
	for range maxUnescape {
		if !strings.Contains(p, "%") {
			break
		}
		u, err := url.PathUnescape(p)
		if err != nil {
			return "", false
		}
		p = u
	}
	if strings.Contains(p, "%") {
		return "", false // still escaped after maxUnescape rounds: refuse
	}
	p = strings.ReplaceAll(p, "\\", "/")
	segments := strings.Split(p, "/")
	for i, s := range segments {
		if at := strings.IndexByte(s, ';'); at >= 0 {
			s = s[:at]
		}
		if s != "." && s != ".." {
			s = strings.TrimRight(s, ".")
		}
		segments[i] = strings.ToLower(s)
	}
	p = path.Clean("/" + strings.Join(segments, "/"))
	if !strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) {
		return "", false
	}
	return p, true
}
