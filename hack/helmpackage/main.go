// Command helmpackage packages the chart with the Helm SDK, as `helm package`
// does, after linting it (no helm binary needed).
//
//	go run ./hack/helmpackage charts/octopods-operator dist
package main

import (
	"fmt"
	"os"

	"helm.sh/helm/v3/pkg/action"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: helmpackage CHART_DIR OUTPUT_DIR")
		os.Exit(2)
	}
	chart, out := os.Args[1], os.Args[2]
	lint := action.NewLint()
	lint.Strict = true
	if res := lint.Run([]string{chart}, map[string]any{}); len(res.Errors) > 0 {
		for _, m := range res.Messages {
			fmt.Fprintln(os.Stderr, m)
		}
		os.Exit(1)
	}
	p := action.NewPackage()
	p.Destination = out
	path, err := p.Run(chart, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helmpackage:", err)
		os.Exit(1)
	}
	fmt.Println("packaged", path)
}
