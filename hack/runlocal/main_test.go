package main

import (
	"os"
	"strings"
	"testing"
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
