// Command kubectl-octopods is the kubectl plugin `kubectl octopods` (krew
// name octopods): the Octopods settings page in your terminal and browser.
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/octopods/octopods-operator/internal/plugin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := plugin.Execute(ctx)
	stop()
	os.Exit(code)
}
