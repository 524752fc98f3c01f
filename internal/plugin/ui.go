package plugin

import (
	"context"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"os"
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
				if file, err := redirectFile(url); err == nil {
					defer func() { _ = os.Remove(file) }()
					openBrowser(file)
				}
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

// redirectFile writes a page that sends the browser to url, readable by
// this user only, and returns its path: the opener's command line, which
// any local user can read in /proc, then holds a file name and not the
// login token (as Jupyter does).
func redirectFile(url string) (string, error) {
	f, err := os.CreateTemp("", "octopods-ui-*.html") // mode 0600
	if err != nil {
		return "", err
	}
	page := `<!DOCTYPE html><meta charset="utf-8"><meta name="referrer" content="no-referrer">` +
		`<meta http-equiv="refresh" content="0;url=` + html.EscapeString(url) + `"><title>Octopods settings</title>` +
		`<a href="` + html.EscapeString(url) + `">Open the Octopods settings page</a>`
	if _, err := f.WriteString(page); err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return "", err
	}
	return f.Name(), f.Close()
}

// openBrowser opens a file with the desktop's opener, if there is one.
func openBrowser(path string) {
	opener := "xdg-open"
	switch runtime.GOOS {
	case "darwin":
		opener = "open"
	case "windows":
		opener = "explorer"
	}
	if bin, err := exec.LookPath(opener); err == nil {
		_ = exec.Command(bin, path).Start()
	}
}
