package plugin

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// kubectl runs kubectl_complete-octopods with the words after `kubectl
// octopods`; it must hand them, unchanged, to the plugin's __complete.
func TestKubectlCompletionHelperHandsWordsToThePlugin(t *testing.T) {
	dir := t.TempDir()
	fake := "#!/bin/sh\necho \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "kubectl-octopods"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("../../hack/kubectl_complete-octopods", "copy", "ac")
	cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "__complete copy ac" {
		t.Fatalf("the plugin got %q, want \"__complete copy ac\"", got)
	}
}
