// Command pluginrelease is `make plugin-release VERSION=v0.1.0`: it builds
// kubectl-octopods for every platform of the krew manifest, packs each as
// kubectl-octopods_<os>_<arch>.tar.gz (the binary and LICENSE), writes
// their SHA-256 sums, and fills the krew manifest template with the
// version and the sums: what a GitHub release uploads and what is
// submitted to krew-index.
package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// platforms are those of hack/krew/octopods.yaml.
var platforms = []struct{ os, arch string }{
	{"linux", "amd64"}, {"linux", "arm64"}, {"darwin", "amd64"}, {"darwin", "arm64"}, {"windows", "amd64"},
}

func main() {
	version := flag.String("version", "", "The release's version, e.g. v0.1.0 (the tag the archives are uploaded under).")
	out := flag.String("out", "dist/plugin", "Where the archives, sha256sums.txt and the krew manifest go.")
	flag.Parse()
	if !regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$`).MatchString(*version) {
		fmt.Fprintln(os.Stderr, "pluginrelease: give the release's version as make plugin-release VERSION=v0.1.0")
		os.Exit(2)
	}
	if err := run(*version, *out); err != nil {
		fmt.Fprintln(os.Stderr, "pluginrelease:", err)
		os.Exit(1)
	}
}

func run(version, out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	license, err := os.ReadFile("LICENSE")
	if err != nil {
		return err
	}
	sums := map[string]string{}
	for _, p := range platforms {
		bin := "kubectl-octopods"
		if p.os == "windows" {
			bin += ".exe"
		}
		built := filepath.Join(out, p.os+"_"+p.arch, bin)
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", built, "./cmd/kubectl-octopods")
		cmd.Env = append(os.Environ(), "GOOS="+p.os, "GOARCH="+p.arch, "CGO_ENABLED=0")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build for %s/%s: %w", p.os, p.arch, err)
		}
		binary, err := os.ReadFile(built)
		if err != nil {
			return err
		}
		archive := filepath.Join(out, fmt.Sprintf("kubectl-octopods_%s_%s.tar.gz", p.os, p.arch))
		sum, err := writeArchive(archive, map[string][]byte{bin: binary, "LICENSE": license})
		if err != nil {
			return err
		}
		sums[p.os+"_"+p.arch] = sum
		_ = os.RemoveAll(filepath.Dir(built))
		fmt.Printf("%s  %s\n", sum, filepath.Base(archive))
	}
	var lines []string
	for platform, sum := range sums {
		lines = append(lines, fmt.Sprintf("%s  kubectl-octopods_%s.tar.gz", sum, platform))
	}
	sort.Strings(lines)
	if err := os.WriteFile(filepath.Join(out, "sha256sums.txt"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	template, err := os.ReadFile("hack/krew/octopods.yaml")
	if err != nil {
		return err
	}
	manifest, err := fillManifest(string(template), version, sums)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "octopods.yaml"), []byte(manifest), 0o644)
}

// writeArchive writes a tar.gz of files (sorted, fixed times and modes,
// so the same inputs give the same bytes) and returns its SHA-256.
func writeArchive(path string, files map[string][]byte) (string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	gz := gzip.NewWriter(io.MultiWriter(f, h))
	tw := tar.NewWriter(gz)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		mode := int64(0o644)
		if strings.HasPrefix(n, "kubectl-octopods") {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: mode, Size: int64(len(files[n])), Format: tar.FormatPAX}); err != nil {
			return "", err
		}
		if _, err := tw.Write(files[n]); err != nil {
			return "", err
		}
	}
	err = errors.Join(tw.Close(), gz.Close(), f.Close())
	return hex.EncodeToString(h.Sum(nil)), err
}

// fillManifest puts the version and each platform's sum into the krew
// manifest template; a placeholder left unfilled is an error.
func fillManifest(template, version string, sums map[string]string) (string, error) {
	out := strings.ReplaceAll(template, "VERSION", version)
	for platform, sum := range sums {
		out = strings.ReplaceAll(out, "SHA256_"+strings.ToUpper(platform), sum)
	}
	if left := regexp.MustCompile(`SHA256_[A-Z0-9_]+`).FindString(out); left != "" {
		return "", fmt.Errorf("the krew manifest still has %s: no archive was built for it", left)
	}
	// The template's header comment describes the template, not a release.
	if i := strings.Index(out, "apiVersion:"); i > 0 {
		out = out[i:]
	}
	return out, nil
}
