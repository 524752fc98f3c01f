package plugin

import (
	"os"
	"strings"
	"testing"
)

// The login token reaches the browser through a file only this user may
// read, never through the opener's command line.
func TestRedirectFileIsPrivate(t *testing.T) {
	url := "http://127.0.0.1:40000/#login=secret-token"
	file, err := redirectFile(url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.Remove(file) }()
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	if strings.Contains(file, "secret-token") {
		t.Fatal("the token is in the file name")
	}
	page, _ := os.ReadFile(file)
	if !strings.Contains(string(page), `content="0;url=`+url+`"`) {
		t.Fatalf("page %s", page)
	}
}
