package localenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/octopods/octopods-operator/internal/secretscanning"
)

// SecretScanningKeyIdentifier names the local signing key, as GitHub's
// Github-Public-Key-Identifier names one of its own.
const SecretScanningKeyIdentifier = "local"

// SecretScanningDir holds the local key pair: private-key.pem (to sign a
// report with openssl) and public-keys.json (GitHub's shape, trusted by
// the local proxy).
func (e *Env) SecretScanningDir() string { return filepath.Join(e.Dir, "secret-scanning") }

// SecretScanningKey is the local private key that the proxy trusts.
func (e *Env) SecretScanningKey() (*ecdsa.PrivateKey, error) {
	data, err := os.ReadFile(filepath.Join(e.SecretScanningDir(), "private-key.pem"))
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("private-key.pem holds no PEM block")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("private-key.pem is not an ECDSA key")
	}
	return ec, nil
}

// secretScanningKeys makes the local key pair, once (a later run keeps it,
// so a shell that signs with it goes on working), and returns the public
// keys file.
func (e *Env) secretScanningKeys() (string, error) {
	dir := e.SecretScanningDir()
	public := filepath.Join(dir, "public-keys.json")
	if _, err := e.SecretScanningKey(); err == nil {
		if _, err := os.Stat(public); err == nil {
			return public, nil
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "private-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return "", err
	}
	doc, err := secretscanning.PublicKeysDocument(SecretScanningKeyIdentifier, &key.PublicKey)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(public, doc, 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", public, err)
	}
	return public, nil
}
