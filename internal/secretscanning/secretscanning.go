// Package secretscanning reads GitHub's secret scanning partner reports:
// it checks their signature against GitHub's published public keys,
// decodes the reported tokens and writes the feedback GitHub expects. It
// holds no I/O.
//
// GitHub signs the raw request body with ECDSA P-256 over SHA-256 and
// sends the signature (base64 ASN.1 DER) in Github-Public-Key-Signature,
// naming the key in Github-Public-Key-Identifier. Its public keys are
// published at https://api.github.com/meta/public_keys/secret_scanning in
// the shape ParsePublicKeys reads.
package secretscanning

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
)

// Request headers GitHub sends.
const (
	HeaderKeyIdentifier = "Github-Public-Key-Identifier"
	HeaderSignature     = "Github-Public-Key-Signature"
)

// Limits on one report. GitHub sends a push's matches in one request; a
// body far past these is not GitHub's.
const (
	// MaxBodyBytes bounds a report's body: 1,000 tokens with long URLs are
	// well under 1 MiB.
	MaxBodyBytes = 4 << 20
	// MaxTokens bounds the tokens of one report.
	MaxTokens = 10000
	// maxSignatureBytes bounds the header: a P-256 DER signature is at
	// most 72 bytes, 96 in base64.
	maxSignatureBytes = 256
)

// Errors of Verify. None of them says more to the caller than "not
// signed by GitHub".
var (
	ErrUnknownKey       = errors.New("the signing key identifier is not among the trusted public keys")
	ErrMissingSignature = errors.New("no signature or key identifier")
	ErrBadSignature     = errors.New("the signature does not verify over the body")
)

// PublicKeys are the keys reports are signed with, by identifier.
type PublicKeys struct {
	keys map[string]*ecdsa.PublicKey
}

// publicKeysFile is GitHub's shape.
type publicKeysFile struct {
	PublicKeys []struct {
		KeyIdentifier string `json:"key_identifier"`
		Key           string `json:"key"`
		IsCurrent     bool   `json:"is_current"`
	} `json:"public_keys"`
}

// ParsePublicKeys reads GitHub's public_keys document. Every key, current
// or not, is trusted: GitHub signs with the old key for a while after a
// change of key. Each must be an ECDSA P-256 key in PEM.
func ParsePublicKeys(data []byte) (*PublicKeys, error) {
	var f publicKeysFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf(`not GitHub's public keys JSON ({"public_keys":[{"key_identifier":…,"key":"-----BEGIN PUBLIC KEY-----…"}]}): %w`, err)
	}
	if len(f.PublicKeys) == 0 {
		return nil, errors.New("public_keys is empty: no report could ever be verified")
	}
	out := &PublicKeys{keys: map[string]*ecdsa.PublicKey{}}
	for i, k := range f.PublicKeys {
		if k.KeyIdentifier == "" {
			return nil, fmt.Errorf("public_keys[%d].key_identifier is empty", i)
		}
		block, _ := pem.Decode([]byte(k.Key))
		if block == nil {
			return nil, fmt.Errorf("public_keys[%d].key is not a PEM public key", i)
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public_keys[%d].key: %w", i, err)
		}
		ec, ok := pub.(*ecdsa.PublicKey)
		if !ok || ec.Curve != elliptic.P256() {
			return nil, fmt.Errorf("public_keys[%d].key is not an ECDSA P-256 key", i)
		}
		out.keys[k.KeyIdentifier] = ec
	}
	return out, nil
}

// Len is the number of trusted keys.
func (k *PublicKeys) Len() int { return len(k.keys) }

// Verify checks that signature (base64 ASN.1 DER, as GitHub sends it) is
// the signature of body by the key named identifier.
func (k *PublicKeys) Verify(body []byte, identifier, signature string) error {
	if identifier == "" || signature == "" {
		return ErrMissingSignature
	}
	pub := k.keys[identifier]
	if pub == nil {
		return ErrUnknownKey
	}
	if len(signature) > maxSignatureBytes {
		return ErrBadSignature
	}
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return ErrBadSignature
	}
	digest := sha256.Sum256(body)
	if !ecdsa.VerifyASN1(pub, digest[:], sig) {
		return ErrBadSignature
	}
	return nil
}

// Token is one reported match.
type Token struct {
	Token string `json:"token"`
	// Type is the pattern's name as registered with GitHub.
	Type string `json:"type"`
	// URL is where it was found.
	URL string `json:"url"`
	// Source is what kind of place: content, commit, pull_request_comment…
	Source string `json:"source"`
}

// ParseReport decodes a verified report's tokens.
func ParseReport(body []byte) ([]Token, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var tokens []Token
	if err := dec.Decode(&tokens); err != nil {
		return nil, fmt.Errorf("a report is a JSON array of {token, type, url, source}: %w", err)
	}
	if len(tokens) > MaxTokens {
		return nil, fmt.Errorf("a report holds at most %d tokens, this one %d", MaxTokens, len(tokens))
	}
	return tokens, nil
}

// Labels of the feedback.
const (
	TruePositive  = "true_positive"
	FalsePositive = "false_positive"
)

// Feedback is GitHub's answer shape for one token: by its hash, never the
// token itself.
type Feedback struct {
	TokenHash string `json:"token_hash"`
	TokenType string `json:"token_type"`
	Label     string `json:"label"`
}

// Sign signs body as GitHub does (base64 ASN.1 DER ECDSA over SHA-256):
// for a local key pair (make run-local) and tests.
func Sign(key *ecdsa.PrivateKey, body []byte) (string, error) {
	digest := sha256.Sum256(body)
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// PublicKeysDocument is GitHub's public keys document holding pub alone,
// as current, under identifier.
func PublicKeysDocument(identifier string, pub *ecdsa.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	key := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	return json.MarshalIndent(map[string]any{"public_keys": []map[string]any{{"key_identifier": identifier, "key": key, "is_current": true}}}, "", "  ")
}
