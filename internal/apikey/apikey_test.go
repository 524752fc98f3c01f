package apikey

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"
)

var scannerPattern = regexp.MustCompile(`^opk_[0-9A-Za-z]{49}$`)

func TestGenerateMatchesTheFormat(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		key, err := Generate()
		if err != nil {
			t.Fatal(err)
		}
		if len(key) != 53 || !scannerPattern.MatchString(key) {
			t.Fatalf("key of length %d does not match the scanner pattern", len(key))
		}
		if err := Validate(key); err != nil {
			t.Fatalf("generated key does not validate: %v", err)
		}
		if seen[key] {
			t.Fatal("duplicate key")
		}
		seen[key] = true
	}
}

func TestGenerateEncodesAllEntropy(t *testing.T) {
	zeros, err := generate(bytes.NewReader(make([]byte, 32)), Prefix)
	if err != nil {
		t.Fatal(err)
	}
	if want := Prefix + strings.Repeat("0", BodyLength); zeros[:len(Prefix)+BodyLength] != want {
		t.Fatalf("zero entropy: body %q, want all zeros", zeros[len(Prefix):len(Prefix)+BodyLength])
	}
	max, err := generate(bytes.NewReader(bytes.Repeat([]byte{0xff}, 32)), Prefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(max); err != nil {
		t.Fatalf("max entropy key invalid: %v", err)
	}
	if _, err := generate(bytes.NewReader(make([]byte, 31)), Prefix); err == nil {
		t.Fatal("short entropy source must fail")
	}
}

func TestValidate(t *testing.T) {
	good, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	cases := []struct {
		name string
		in   string
		want error
	}{
		{"valid", good, nil},
		{"empty", "", ErrLength},
		{"short", good[:52], ErrLength},
		{"long", good + "a", ErrLength},
		{"bearer scheme", "Bearer " + good[:46], ErrPrefix},
		{"other prefix", "opx_" + good[4:], ErrPrefix},
		{"upper prefix", "OPK_" + good[4:], ErrPrefix},
		{"non-base62 in body", good[:10] + "-" + good[11:], ErrAlphabet},
		{"non-base62 in checksum", good[:50] + "_" + good[51:], ErrAlphabet},
		{"multi-byte rune", good[:10] + "é" + good[12:], ErrAlphabet},
		{"body typo", flip(good, 20), ErrChecksum},
		{"checksum typo", flip(good, 52), ErrChecksum},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Validate(tc.in); !errors.Is(got, tc.want) {
				t.Fatalf("Validate = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestChecksumIsCRC32IEEE(t *testing.T) {
	// crc32.ChecksumIEEE("123456789") = 0xCBF43926 = 3421780262, base62 "3Jzrme" (computed independently).
	if got := string(appendChecksum(nil, "123456789")); got != "3Jzrme" {
		t.Fatalf("checksum = %q", got)
	}
}

func TestErrorsNeverContainTheKey(t *testing.T) {
	key, _ := Generate()
	bad := key[:52] + "!"
	if err := Validate(bad); err == nil || strings.Contains(err.Error(), bad[4:20]) {
		t.Fatalf("error %v leaks key material", err)
	}
}

func TestID(t *testing.T) {
	cases := []struct{ key, id string }{
		// sha256("") and sha256("abc") prefixes, from FIPS 180-2 test vectors.
		{"", "e3b0c44298fc"},
		{"abc", "ba7816bf8f01"},
	}
	for _, tc := range cases {
		if got := ID(tc.key); got != tc.id {
			t.Errorf("ID(%q) = %s, want %s", tc.key, got, tc.id)
		}
	}
	key, _ := Generate()
	if got := DigestOf(key).ID(); got != ID(key) || len(got) != IDLength {
		t.Fatalf("Digest.ID() = %q, ID() = %q", got, ID(key))
	}
}

func TestValidateDoesNotAllocate(t *testing.T) {
	key, _ := Generate()
	if n := testing.AllocsPerRun(100, func() { _ = Validate(key) }); n != 0 {
		t.Fatalf("Validate allocates %v times per call", n)
	}
}

func FuzzValidate(f *testing.F) {
	key, _ := Generate()
	f.Add(key)
	f.Add("")
	f.Add("opk_")
	f.Add("Bearer " + key)
	f.Add(key[:52] + "0")
	f.Fuzz(func(t *testing.T, s string) {
		err := Validate(s)
		if err == nil {
			if !scannerPattern.MatchString(s) {
				t.Fatalf("accepted %q outside the scanner pattern", s)
			}
			// A valid key's checksum is a function of its body: recomputing it must agree.
			if again := string(appendChecksum([]byte(s[:len(Prefix)+BodyLength]), s[len(Prefix):len(Prefix)+BodyLength])); again != s {
				t.Fatalf("checksum not reproducible for %q", s)
			}
		} else if scannerPattern.MatchString(s) && !errors.Is(err, ErrChecksum) {
			t.Fatalf("%q matches the pattern but failed with %v", s, err)
		}
	})
}

func BenchmarkValidate(b *testing.B) {
	key, _ := Generate()
	b.ReportAllocs()
	for b.Loop() {
		_ = Validate(key)
	}
}

func BenchmarkGenerate(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_, _ = Generate()
	}
}

func TestDigestRoundTrip(t *testing.T) {
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	d := DigestOf(k)
	got, err := ParseDigest(d.String())
	if err != nil || got != d {
		t.Fatalf("ParseDigest(%s) = %x, %v", d, got, err)
	}
	for _, bad := range []string{"", "sha256:", "sha256:" + strings.Repeat("A", 64), "md5:" + strings.Repeat("0", 64),
		"sha256:" + strings.Repeat("0", 63), "sha256:" + strings.Repeat("0", 65), "SHA256:" + strings.Repeat("0", 64)} {
		if _, err := ParseDigest(bad); err == nil {
			t.Errorf("ParseDigest(%q) accepted", bad)
		}
	}
}

func TestThreePrefixes(t *testing.T) {
	for _, prefix := range []string{Prefix, PrefixChannel, PrefixWhatsApp} {
		k, err := GenerateWith(prefix)
		if err != nil || !strings.HasPrefix(k, prefix) || Validate(k) != nil {
			t.Errorf("GenerateWith(%q) = %q, %v; Validate: %v", prefix, k, err, Validate(k))
		}
	}
	k, _ := Generate()
	for _, other := range []string{"opx_", "apk_", "opk-", "OPK_"} {
		if err := Validate(other + k[4:]); !errors.Is(err, ErrPrefix) {
			t.Errorf("Validate(%s…) = %v, want ErrPrefix", other, err)
		}
	}
	if _, err := GenerateWith("opx_"); !errors.Is(err, ErrPrefix) {
		t.Errorf("GenerateWith(opx_) = %v, want ErrPrefix", err)
	}
}
