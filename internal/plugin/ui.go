package plugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os/exec"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/octopods/octopods-operator/internal/settings/web"
)

func (o *Options) uiCommand() *cobra.Command {
	var noBrowser bool
	cmd := &cobra.Command{
		Use:   "ui",
		Short: "The settings page in your browser, served on 127.0.0.1 with your own credentials",
		Long: `ui serves the Octopods settings page ("Workspace API Keys") on 127.0.0.1 at a random port,
prints a one-time login URL and opens it in your browser. Every call is made with your kubeconfig:
buttons show only where your RBAC allows them. Ctrl-C stops it.`,
		Example: `  kubectl octopods ui
  kubectl octopods ui -n team-a --no-browser`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ns, err := o.client()
			if err != nil {
				return err
			}
			s, err := web.New(c, ns, slog.New(slog.NewTextHandler(o.ErrOut, nil)))
			if err != nil {
				return err
			}
			l, url, err := s.Listen()
			if err != nil {
				return fmt.Errorf("listen on 127.0.0.1: %w", err)
			}
			_, _ = fmt.Fprintf(o.Out, "Settings page: %s\n(one-time link: it logs this browser in; Ctrl-C stops the page)\n", url)
			if !noBrowser {
				openBrowser(url)
			}
			srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
			go func() {
				<-cmd.Context().Done()
				shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				_ = srv.Shutdown(shutdown)
			}()
			if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&noBrowser, "no-browser", false, "Print the URL only; do not open a browser.")
	return cmd
}

// openBrowser opens url with the desktop's opener, if there is one.
func openBrowser(url string) {
	opener := "xdg-open"
	switch runtime.GOOS {
	case "darwin":
		opener = "open"
	case "windows":
		opener = "explorer"
	}
	if path, err := exec.LookPath(opener); err == nil {
		_ = exec.Command(path, url).Start()
	}
}
