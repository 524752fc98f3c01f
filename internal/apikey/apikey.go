// Package apikey is the API key format of all three key types: generation,
// parsing with an offline checksum, the public key ID and the digest the
// auth proxy indexes.
//
// A key is a prefix ("opk_" workspace, "opc_" channel, "opw_" WhatsApp
// Business) + a 43-character base62 body encoding 256 random bits + a
// 6-character base62 CRC32 (IEEE) of the body: 53 characters, so secret
// scanners can match op[kcw]_[0-9A-Za-z]{49} and verify the checksum
// offline.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"io"
	"math/big"
	"unsafe"
)

const (
	// Prefix starts every workspace key.
	Prefix = "opk_"
	// PrefixChannel starts every channel key (as long as Prefix).
	PrefixChannel = "opc_"
	// PrefixWhatsApp starts every WhatsApp Business key (as long as Prefix).
	PrefixWhatsApp = "opw_"
	// BodyLength is the base62 length of 256 bits (62^43 > 2^256 > 62^42).
	BodyLength = 43
	// ChecksumLength is the base62 length of a CRC32 (62^6 > 2^32).
	ChecksumLength = 6
	// Length is the length of a whole key.
	Length = len(Prefix) + BodyLength + ChecksumLength
	// IDLength is the number of hex digits of SHA-256 in a key ID.
	IDLength = 12

	entropyBytes = 32
	alphabet     = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)

// Errors name why a string is not a key; they never contain the string.
var (
	ErrLength   = errors.New("key has the wrong length")
	ErrPrefix   = errors.New("key does not start with " + Prefix + ", " + PrefixChannel + " or " + PrefixWhatsApp)
	ErrAlphabet = errors.New("key has a character outside base62")
	ErrChecksum = errors.New("key checksum does not match")
)

// Digest is the SHA-256 of a whole key: what the proxy stores and looks up.
type Digest [sha256.Size]byte

// Generate returns a new workspace key from crypto/rand.
func Generate() (string, error) {
	return generate(rand.Reader, Prefix)
}

// GenerateWith returns a new key with prefix (Prefix, PrefixChannel or
// PrefixWhatsApp) from crypto/rand.
func GenerateWith(prefix string) (string, error) {
	if !isPrefix(prefix) {
		return "", ErrPrefix
	}
	return generate(rand.Reader, prefix)
}

// isPrefix reports whether s starts with one of the three prefixes.
func isPrefix(s string) bool {
	return len(s) >= len(Prefix) && s[0] == 'o' && s[1] == 'p' && s[3] == '_' && (s[2] == 'k' || s[2] == 'c' || s[2] == 'w')
}

func generate(random io.Reader, prefix string) (string, error) {
	var entropy [entropyBytes]byte
	if _, err := io.ReadFull(random, entropy[:]); err != nil {
		return "", err
	}
	body := new(big.Int).SetBytes(entropy[:]).Text(62)
	buf := make([]byte, 0, Length)
	buf = append(buf, prefix...)
	for range BodyLength - len(body) {
		buf = append(buf, alphabet[0])
	}
	buf = append(buf, body...)
	buf = appendChecksum(buf, string(buf[len(Prefix):]))
	return string(buf), nil
}

// appendChecksum appends the fixed-width base62 CRC32 (IEEE) of body.
func appendChecksum(dst []byte, body string) []byte {
	// The body's bytes as a slice without a copy (converting would
	// allocate on every proxied request): crc32 only reads them, and its
	// IEEE polynomial runs on the CPU's carry-less multiply, about 4 times
	// faster than a byte-at-a-time table loop on this path.
	sum := crc32.ChecksumIEEE(unsafe.Slice(unsafe.StringData(body), len(body)))
	var digits [ChecksumLength]byte
	for i := ChecksumLength - 1; i >= 0; i-- {
		digits[i] = alphabet[sum%62]
		sum /= 62
	}
	return append(dst, digits[:]...)
}

// Validate reports why s is not a well-formed key, or nil. It does not allocate,
// so the proxy can run it on every request before any lookup.
func Validate(s string) error {
	if len(s) != Length {
		return ErrLength
	}
	if !isPrefix(s) {
		return ErrPrefix
	}
	rest := s[len(Prefix):]
	for i := 0; i < len(rest); i++ {
		if !base62[rest[i]] {
			return ErrAlphabet
		}
	}
	body, checksum := rest[:BodyLength], rest[BodyLength:]
	var want [ChecksumLength]byte
	if string(appendChecksum(want[:0], body)) != checksum {
		return ErrChecksum
	}
	return nil
}

// base62 marks the bytes of the alphabet: one load per byte on the request path.
var base62 = func() (t [256]bool) {
	for i := range len(alphabet) {
		t[alphabet[i]] = true
	}
	return t
}()

// DigestOf returns the SHA-256 of a key.
func DigestOf(key string) Digest {
	return sha256.Sum256([]byte(key))
}

// ID is the public identifier of a key: the first 12 hex digits of its SHA-256.
func ID(key string) string {
	return DigestOf(key).ID()
}

// DigestPrefix starts the text form of a digest, as published in status.
const DigestPrefix = "sha256:"

// ErrDigest says a published digest is not "sha256:" and 64 hex digits.
var ErrDigest = errors.New(`digest is not "sha256:" followed by 64 lower-case hex digits`)

// String is the published form: "sha256:" and 64 hex digits.
func (d Digest) String() string {
	return DigestPrefix + hex.EncodeToString(d[:])
}

// ParseDigest reads the published form of a digest.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	if len(s) != len(DigestPrefix)+2*len(d) || s[:len(DigestPrefix)] != DigestPrefix {
		return d, ErrDigest
	}
	hexPart := s[len(DigestPrefix):]
	for i := 0; i < len(hexPart); i++ {
		if c := hexPart[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return d, ErrDigest
		}
	}
	if _, err := hex.Decode(d[:], []byte(hexPart)); err != nil {
		return d, ErrDigest
	}
	return d, nil
}

// ID is the public identifier of the key this is the digest of.
func (d Digest) ID() string {
	return hex.EncodeToString(d[:IDLength/2])
}

// Fingerprint is what the operator needs to know of a stored key value
// without holding it: whether there is one, whether it is a well-formed
// key, and its digest (whose first 12 hex digits are its ID).
type Fingerprint struct {
	Present, Valid bool
	Digest         Digest
}

// FingerprintOf is the fingerprint of a stored value ("" is none).
func FingerprintOf(value string) Fingerprint {
	if value == "" {
		return Fingerprint{}
	}
	return Fingerprint{Present: true, Valid: Validate(value) == nil, Digest: DigestOf(value)}
}

// ID is the key's public ID ("" when there is no key).
func (f Fingerprint) ID() string {
	if !f.Present {
		return ""
	}
	return f.Digest.ID()
}
