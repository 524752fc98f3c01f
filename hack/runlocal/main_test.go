package main

import (
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/octopods/octopods-operator/internal/testutil"
)

// The README's "Try it locally" block is what run-local prints with its
// default addresses: one block, kept the same by this test.
func TestReadmeTryItIsWhatRunLocalPrints(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "## Try it locally")
	if !ok {
		t.Fatal("the README has no Try it locally section")
	}
	_, block, ok := strings.Cut(section, "```sh\n")
	block, _, closed := strings.Cut(block, "```")
	if !ok || !closed {
		t.Fatal("no sh block in Try it locally")
	}
	if want := tryIt("bin/local/kubeconfig", "127.0.0.1:8080", "127.0.0.1:9001", "127.0.0.1:8085"); block != want {
		t.Errorf("the README's block differs from what run-local prints; put this in the README:\n%s", want)
	}
}

// A Ctrl-C ends make run-local quietly: the Makefile's run-local recipe,
// with a stub runlocal that stops and exits 0 on SIGINT as the real one
// does, ends without make's "Interrupt" line (which a shell between make
// and runlocal brings back).
func TestCtrlCEndsRunLocalWithoutMakesInterruptLine(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make here")
	}
	makefile, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	_, recipe, ok := strings.Cut(string(makefile), "\nrun-local:")
	if !ok {
		t.Fatal("the Makefile has no run-local target")
	}
	var lines []string
	for _, line := range strings.Split(recipe, "\n")[1:] {
		if !strings.HasPrefix(line, "\t") {
			break
		}
		if strings.Contains(line, "bin/runlocal") && !strings.Contains(line, "go build") {
			lines = append(lines, line)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("run-local's recipe runs bin/runlocal in %d lines, want 1: %q", len(lines), lines)
	}
	dir := t.TempDir()
	for name, content := range map[string]string{
		"Makefile":               "run-local:\n" + lines[0] + "\n",
		"bin/runlocal":           "#!/bin/sh\ntrap 'echo stopping; sleep 0.3; echo stopped; exit 0' INT\necho ready\nwhile :; do sleep 0.05; done\n",
		"hack/envtest-assets.sh": "#!/bin/sh\necho /nowhere\n",
	} {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Caught here, so make starts with SIGINT's default action even when
	// this test was started with it ignored (a background job).
	caught := make(chan os.Signal, 1)
	signal.Notify(caught, os.Interrupt)
	defer signal.Stop(caught)
	cmd := exec.Command("make", "--no-print-directory", "run-local")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its own group, as a terminal's foreground job
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "ready"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("the stub never started: %q", out.String())
		}
	}
	// Ctrl-C: SIGINT to the whole foreground group, make included.
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if got, want := strings.TrimSpace(out.String()), "ready\nstopping\nstopped"; got != want {
		t.Fatalf("after Ctrl-C, make run-local printed %q, want only the stub's %q", got, want)
	}
}
