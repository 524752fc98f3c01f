package secretscanning

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func trusting(t *testing.T, id string, pub *ecdsa.PublicKey) *PublicKeys {
	t.Helper()
	doc, err := PublicKeysDocument(id, pub)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ParsePublicKeys(doc)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func sign(t *testing.T, k *ecdsa.PrivateKey, body []byte) string {
	t.Helper()
	s, err := Sign(k, body)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerify(t *testing.T) {
	github, other := newKey(t), newKey(t)
	keys := trusting(t, "gh-1", &github.PublicKey)
	body := []byte(`[{"token":"opk_x","type":"octopods_workspace_api_key","url":"https://github.com/o/r/blob/x/f","source":"content"}]`)
	otherBody := []byte(`[{"token":"opk_y","type":"octopods_workspace_api_key","url":"https://github.com/o/r/blob/x/g","source":"content"}]`)
	good := sign(t, github, body)
	for _, tc := range []struct {
		name          string
		body          []byte
		id, signature string
		want          error
	}{
		{"GitHub's signature", body, "gh-1", good, nil},
		{"signed by another key", body, "gh-1", sign(t, other, body), ErrBadSignature},
		{"unknown identifier", body, "gh-2", good, ErrUnknownKey},
		{"no identifier", body, "", good, ErrMissingSignature},
		{"no signature", body, "gh-1", "", ErrMissingSignature},
		{"altered body", append([]byte(" "), body...), "gh-1", good, ErrBadSignature},
		{"replayed body with another body's signature", body, "gh-1", sign(t, github, otherBody), ErrBadSignature},
		{"not base64", body, "gh-1", "!!!" + good, ErrBadSignature},
		{"oversized signature", body, "gh-1", strings.Repeat("A", 4096), ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := keys.Verify(tc.body, tc.id, tc.signature); !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParsePublicKeys(t *testing.T) {
	k := newKey(t)
	doc, _ := PublicKeysDocument("a", &k.PublicKey)
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"not JSON", "nope", "not GitHub's public keys JSON"},
		{"empty", `{"public_keys":[]}`, "public_keys is empty"},
		{"no identifier", `{"public_keys":[{"key":"x"}]}`, "public_keys[0].key_identifier is empty"},
		{"not PEM", `{"public_keys":[{"key_identifier":"a","key":"x"}]}`, "public_keys[0].key is not a PEM public key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParsePublicKeys([]byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
	// Old and new keys are both trusted during GitHub's change of key.
	k2 := newKey(t)
	var a, b map[string][]map[string]any
	_ = json.Unmarshal(doc, &a)
	doc2, _ := PublicKeysDocument("b", &k2.PublicKey)
	_ = json.Unmarshal(doc2, &b)
	b["public_keys"][0]["is_current"] = false
	both, _ := json.Marshal(map[string]any{"public_keys": append(a["public_keys"], b["public_keys"]...)})
	keys, err := ParsePublicKeys(both)
	if err != nil || keys.Len() != 2 {
		t.Fatalf("keys = %v, %v", keys, err)
	}
	body := []byte("[]")
	if err := keys.Verify(body, "b", sign(t, k2, body)); err != nil {
		t.Fatalf("a key no longer current must still verify: %v", err)
	}
}

func TestParseReport(t *testing.T) {
	tokens, err := ParseReport([]byte(`[{"token":"t","type":"x","url":"u","source":"commit"}]`))
	if err != nil || len(tokens) != 1 || tokens[0] != (Token{Token: "t", Type: "x", URL: "u", Source: "commit"}) {
		t.Fatalf("%v %v", tokens, err)
	}
	if _, err := ParseReport([]byte(`{"token":"t"}`)); err == nil {
		t.Fatal("an object is not a report")
	}
	many, _ := json.Marshal(make([]Token, MaxTokens+1))
	if _, err := ParseReport(many); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("err = %v", err)
	}
}
