package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestFillManifestFromTheRealTemplate(t *testing.T) {
	template, err := os.ReadFile("../krew/octopods.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string]string{}
	for _, p := range platforms {
		sums[p.os+"_"+p.arch] = strings.Repeat("ab", 32)
	}
	got, err := fillManifest(string(template), "v1.2.3", sums)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Spec struct {
			Version   string `json:"version"`
			Platforms []struct {
				URI    string `json:"uri"`
				SHA256 string `json:"sha256"`
			} `json:"platforms"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal([]byte(got), &m); err != nil {
		t.Fatal(err)
	}
	if m.Spec.Version != "v1.2.3" || len(m.Spec.Platforms) != len(platforms) {
		t.Fatalf("manifest version %q with %d platforms", m.Spec.Version, len(m.Spec.Platforms))
	}
	for _, p := range m.Spec.Platforms {
		if p.SHA256 != strings.Repeat("ab", 32) || !strings.Contains(p.URI, "/download/v1.2.3/kubectl-octopods_") {
			t.Errorf("platform %+v", p)
		}
	}
	delete(sums, "darwin_arm64")
	if _, err := fillManifest(string(template), "v1.2.3", sums); err == nil || !strings.Contains(err.Error(), "SHA256_DARWIN_ARM64") {
		t.Errorf("a platform without an archive: %v", err)
	}
}

// The archive holds the binary (executable) and LICENSE, and its sum is
// the file's.
func TestWriteArchive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.tar.gz")
	sum, err := writeArchive(path, map[string][]byte{"kubectl-octopods": []byte("bin"), "LICENSE": []byte("Apache")})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(data); sum != hex.EncodeToString(want[:]) {
		t.Fatalf("sum %s is not the file's", sum)
	}
	gz, err := gzip.NewReader(strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	seen := map[string]int64{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[h.Name] = h.Mode
	}
	if seen["kubectl-octopods"] != 0o755 || seen["LICENSE"] != 0o644 || len(seen) != 2 {
		t.Fatalf("archive entries %v", seen)
	}
}
