// Command opk-verify checks candidate Octopods API keys (workspace opk_,
// channel opc_, WhatsApp Business opw_) offline:
// the format (prefix + 49 base62 characters) and the CRC32 checksum of the
// body, so a secret scanner can drop random matches. It never prints a key.
//
//	opk-verify KEY...          # or one candidate per line on stdin
//
// Exit status: 0 when every candidate is a well-formed key, 1 when one is
// not (each line of output says which, by position), 2 on usage errors.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/octopods/octopods-operator/internal/apikey"
)

func main() {
	candidates := os.Args[1:]
	if len(candidates) == 0 {
		s := bufio.NewScanner(os.Stdin)
		for s.Scan() {
			if line := strings.TrimSpace(s.Text()); line != "" {
				candidates = append(candidates, line)
			}
		}
	}
	if len(candidates) == 0 {
		fmt.Fprintln(os.Stderr, "usage: opk-verify KEY... (or candidates on stdin, one per line)")
		os.Exit(2)
	}
	status := 0
	for i, c := range candidates {
		if err := apikey.Validate(c); err != nil {
			fmt.Printf("candidate %d: not a key: %v\n", i+1, err)
			status = 1
			continue
		}
		fmt.Printf("candidate %d: valid key, key ID %s\n", i+1, apikey.ID(c))
	}
	os.Exit(status)
}
