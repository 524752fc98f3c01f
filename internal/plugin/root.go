// Package plugin is `kubectl octopods`: the Octopods settings page as
// commands (get, create, copy, rotate, audit) and as a local web page (ui),
// acting with the person's own kubeconfig, so RBAC decides everything.
package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/settings"
)

// copyWait is how long copy waits for a key just created.
const copyWait = 10 * time.Second

// rotateWait is how long rotate waits for the new key.
const rotateWait = 30 * time.Second

// Options are what every command shares: kubectl's flags and the streams.
type Options struct {
	Flags *genericclioptions.ConfigFlags
	genericiooptions.IOStreams
	// IsTerminal reports whether stdout is a terminal (tests replace it).
	IsTerminal func() bool
	// Now is the clock (tests replace it).
	Now func() time.Time
}

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(octopodsv1alpha1.AddToScheme(scheme))
}

// client returns a client acting as the person, and the namespace to use.
func (o *Options) client() (client.Client, string, error) {
	cfg, err := o.Flags.ToRESTConfig()
	if err != nil {
		return nil, "", fmt.Errorf("no cluster to talk to: %w (kubectl octopods uses your kubeconfig, as kubectl does)", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, "", err
	}
	ns, _, err := o.Flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, "", err
	}
	return c, ns, nil
}

// NewCommand is `kubectl octopods`.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	return newCommand(&Options{
		Flags:      genericclioptions.NewConfigFlags(true),
		IOStreams:  streams,
		IsTerminal: func() bool { f, ok := streams.Out.(*os.File); return ok && term.IsTerminal(int(f.Fd())) },
		Now:        time.Now,
	})
}

func newCommand(o *Options) *cobra.Command {
	root := &cobra.Command{
		Use: "octopods",
		// kubectl runs us as kubectl-octopods; help and examples say
		// `kubectl octopods`.
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl octopods"},
		Short:       "API keys of Octopods (workspace, channel and WhatsApp Business keys): list, create, copy, rotate and audit them, or open the settings page",
		Long: `kubectl octopods is the Octopods settings page ("Workspace API Keys") for your cluster.
Every command acts as you, with your kubeconfig: what you may do is what your RBAC allows.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	o.Flags.AddFlags(root.PersistentFlags())
	root.AddCommand(o.getCommand(), o.createCommand(), o.copyCommand(), o.rotateCommand(), o.auditCommand(), o.uiCommand())
	return root
}

// Execute runs the plugin and prints an error as one line.
func Execute(ctx context.Context) int {
	cmd := NewCommand(genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr})
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	return 0
}

// completeWorkspaces completes workspace names in the chosen namespace.
func (o *Options) completeWorkspaces(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	c, ns, err := o.client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var list octopodsv1alpha1.WorkspaceList
	if err := c.List(cmd.Context(), &list, client.InNamespace(ns)); err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	names := make([]string, 0, len(list.Items))
	for _, ws := range list.Items {
		names = append(names, ws.Name)
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

func (o *Options) getCommand() *cobra.Command {
	var all bool
	var output string
	cmd := &cobra.Command{
		Use:   "get [WORKSPACE... | channels | whatsapp | channel/NAME... | whatsapp/NAME...]",
		Short: "The Workspace API Keys table (workspace, provider, masked key, key ID, last use), or the channels' or WhatsApp Business Accounts' keys",
		Example: `  kubectl octopods get
  kubectl octopods get acme -n team-a
  kubectl octopods get channels
  kubectl octopods get whatsapp -A -o json`,
		ValidArgsFunction: o.completeWorkspaces,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := o.client()
			if err != nil {
				return err
			}
			if all {
				ns = ""
			}
			if kind, ok := settings.KindListed(firstArg(args)); ok && len(args) == 1 {
				rows, err := settings.OwnerRows(cmd.Context(), c, kind, ns)
				if err != nil {
					return err
				}
				return o.printOwnerRows(rows, args[0], output, all)
			}
			if len(args) > 0 && strings.Contains(args[0], "/") {
				rows, err := o.ownerRowsOf(cmd.Context(), c, ns, args)
				if err != nil {
					return err
				}
				return o.printOwnerRows(rows, "channels", output, all)
			}
			rows, err := settings.Rows(cmd.Context(), c, ns, args)
			if err != nil {
				return err
			}
			return o.printRows(rows, output, all)
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "List the workspaces of every namespace.")
	cmd.Flags().StringVarP(&output, "output", "o", "", "Output format: json or yaml (for scripts; never the key itself).")
	return cmd
}

// printStructured prints rows as json or yaml ([] for none).
func (o *Options) printStructured(rows any, output string) error {
	data, err := json.MarshalIndent(rows, "", "  ")
	if err == nil && output == "yaml" {
		data, err = yaml.JSONToYAML(data)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(o.Out, string(data))
	return err
}

func (o *Options) printRows(rows []settings.Row, output string, all bool) error {
	switch output {
	case "json", "yaml":
		if rows == nil {
			rows = []settings.Row{}
		}
		return o.printStructured(rows, output)
	case "":
	default:
		return fmt.Errorf("--output %q: use json or yaml, or leave it out for the table", output)
	}
	if len(rows) == 0 {
		_, err := fmt.Fprintln(o.ErrOut, "No workspaces found.")
		return err
	}
	w := tabwriter.NewWriter(o.Out, 0, 0, 3, ' ', 0)
	if all {
		_, _ = fmt.Fprint(w, "NAMESPACE\t")
	}
	_, _ = fmt.Fprintln(w, "WORKSPACE\tPROVIDER\tAPI KEY\tKEY ID\tLAST USED")
	for _, r := range rows {
		if all {
			_, _ = fmt.Fprintf(w, "%s\t", r.Namespace)
		}
		_, _ = fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Workspace, dash(r.Provider), shownKey(r.KeyState, apikey.Prefix), dash(r.KeyID), o.lastUsed(r.KeyState))
	}
	return w.Flush()
}

// ownerRowsOf are the rows of the named channels and WhatsApp Business
// Accounts (channel/NAME, whatsapp/NAME), in the order given.
func (o *Options) ownerRowsOf(ctx context.Context, c client.Client, ns string, args []string) ([]settings.OwnerRow, error) {
	var out []settings.OwnerRow
	lists := map[string][]settings.OwnerRow{}
	for _, arg := range args {
		t, err := settings.ParseTarget(arg)
		if err != nil {
			return nil, err
		}
		if t.Kind.Kind == octopodsv1alpha1.WorkspaceKey.Kind {
			return nil, fmt.Errorf("%q: list workspaces and channels separately (kubectl octopods get %s, kubectl octopods get %s)", arg, t.Name, args[0])
		}
		rows, ok := lists[t.Kind.Kind]
		if !ok {
			if rows, err = settings.OwnerRows(ctx, c, t.Kind, ns); err != nil {
				return nil, err
			}
			lists[t.Kind.Kind] = rows
		}
		found := false
		for _, r := range rows {
			if r.Target == t.String() {
				out, found = append(out, r), true
			}
		}
		if !found {
			return nil, fmt.Errorf("no %s %q in namespace %q: `kubectl octopods get %s` lists them", t.Noun(), t.Name, ns, settings.ListWord(t.Kind))
		}
	}
	return out, nil
}

// printOwnerRows is `get channels` and `get whatsapp`: the channel pages'
// cards as a table.
func (o *Options) printOwnerRows(rows []settings.OwnerRow, what, output string, all bool) error {
	switch output {
	case "json", "yaml":
		return o.printStructured(rows, output)
	case "":
	default:
		return fmt.Errorf("--output %q: use json or yaml, or leave it out for the table", output)
	}
	if len(rows) == 0 {
		noun := map[string]string{"channels": "channels", "whatsapp": "WhatsApp Business Accounts"}[what]
		_, err := fmt.Fprintf(o.ErrOut, "No %s found.\n", noun)
		return err
	}
	w := tabwriter.NewWriter(o.Out, 0, 0, 3, ' ', 0)
	if all {
		_, _ = fmt.Fprint(w, "NAMESPACE\t")
	}
	_, _ = fmt.Fprintln(w, "NAME\tTYPE\tWORKSPACE\tKEY\tAPI KEY\tKEY ID\tLAST USED")
	for _, r := range rows {
		if all {
			_, _ = fmt.Fprintf(w, "%s\t", r.Namespace)
		}
		prefix := apikey.PrefixChannel
		if r.Type == "WhatsApp" {
			prefix = apikey.PrefixWhatsApp
		}
		_, _ = fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Target, r.Type, r.Workspace, r.Label, shownKey(r.KeyState, prefix), dash(r.KeyID), o.lastUsed(r.KeyState))
	}
	return w.Flush()
}

// shownKey is the API KEY column: "opk_…" (the type's prefix) for an
// issued key (its ID is in the next column), else what the page says.
// Listing reads no Secret: whoever runs it may, and the key is read only by
// copy.
func shownKey(r settings.KeyState, prefix string) string {
	switch {
	case !r.HasKey:
		return settings.NoKey
	case !r.Issued:
		return "(" + r.State + ")"
	}
	return prefix + "…"
}

func (o *Options) lastUsed(r settings.KeyState) string {
	if r.LastUsed == nil {
		return "never"
	}
	return settings.Ago(*r.LastUsed, o.Now())
}

func (o *Options) createCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "create WORKSPACE | channel/NAME | whatsapp/NAME",
		Short: `"Create API Key" for an existing workspace, channel or WhatsApp Business Account`,
		Example: `  kubectl octopods create acme
  kubectl octopods create channel/sms-1      # a Channel key: only that channel's endpoints
  kubectl octopods create acme -n team-a && kubectl octopods copy acme -n team-a | pbcopy`,
		Args:              exactlyOneWorkspace,
		ValidArgsFunction: o.completeWorkspaces,
		RunE: o.onWorkspace(func(ctx context.Context, c client.Client, ns string, t settings.Target) error {
			if err := settings.CreateKey(ctx, c, ns, t); err != nil {
				return err
			}
			_, _ = fmt.Fprintf(o.Out, "API key created for %s %s. Copy it with: kubectl octopods copy %s -n %s | pbcopy   (Linux: | xclip -selection clipboard, or | wl-copy)\n", t.Noun(), t.Name, t, ns)
			return nil
		}),
	}
}

func (o *Options) copyCommand() *cobra.Command {
	var show bool
	cmd := &cobra.Command{
		Use:   "copy WORKSPACE | channel/NAME | whatsapp/NAME",
		Short: "The key on stdout and nothing else, for pipes and secret managers",
		Long: `copy prints the workspace's API key, waiting a few seconds for a key just created.
It refuses to print to a terminal, so the key does not stay in your scrollback: pipe it, or give --show.`,
		Example: `  kubectl octopods copy acme | pbcopy            # macOS
  kubectl octopods copy acme | xclip -selection clipboard
  kubectl octopods copy acme | vault kv put secret/octopods/acme key=-
  kubectl octopods copy acme --show`,
		Args:              exactlyOneWorkspace,
		ValidArgsFunction: o.completeWorkspaces,
		RunE: o.onWorkspace(func(ctx context.Context, c client.Client, ns string, t settings.Target) error {
			if o.IsTerminal() && !show {
				return fmt.Errorf("not printing the key of %q to a terminal, where it would stay in the scrollback: pipe it (kubectl octopods copy %s | pbcopy), or give --show", t, t)
			}
			key, err := settings.ReadKey(ctx, c, ns, t, copyWait)
			if err != nil {
				return err
			}
			_, err = io.WriteString(o.Out, key+"\n")
			return err
		}),
	}
	cmd.Flags().BoolVar(&show, "show", false, "Print the key even to a terminal.")
	return cmd
}

func (o *Options) rotateCommand() *cobra.Command {
	var tok string
	cmd := &cobra.Command{
		Use:   "rotate WORKSPACE | channel/NAME | whatsapp/NAME",
		Short: "Replace the key with a new one (the old one works for the key's grace period)",
		Example: `  kubectl octopods rotate acme
  kubectl octopods rotate acme --token LEAK-2026-11-27`,
		Args:              exactlyOneWorkspace,
		ValidArgsFunction: o.completeWorkspaces,
		RunE: o.onWorkspace(func(ctx context.Context, c client.Client, ns string, t settings.Target) error {
			if tok == "" {
				tok = settings.DefaultRotationToken(o.Now())
			}
			before, err := settings.RequestRotation(ctx, c, ns, t, tok)
			if err != nil {
				return err
			}
			after, err := settings.WaitForRotation(ctx, c, ns, t, tok, rotateWait)
			if err != nil {
				return err
			}
			st := after.KeyStatus()
			_, _ = fmt.Fprintf(o.Out, "Rotated the key of %s: %s → %s (token %q).\n", t, dash(before.KeyStatus().KeyID), st.KeyID, tok)
			if st.PreviousKeyID != "" && st.PreviousValidUntil != nil {
				_, _ = fmt.Fprintf(o.Out, "The old key %s keeps working until %s (grace period %s).\n", st.PreviousKeyID, st.PreviousValidUntil.UTC().Format(time.RFC3339), gracePeriod(after))
			} else {
				_, _ = fmt.Fprintf(o.Out, "The old key stopped working at once (grace period 0s): integrations must load the new key.\n")
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&tok, "token", "", "Rotation token, used once (default: a time stamp); a ticket number reads well in the audit.")
	return cmd
}

func gracePeriod(k octopodsv1alpha1.KeyObject) string {
	if g := k.Settings().RotationGracePeriod; g != nil {
		return g.String()
	}
	return "0s"
}

func (o *Options) auditCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "audit WORKSPACE | channel/NAME | whatsapp/NAME",
		Short:             "Who created and rotated the key, its last uses, revoked keys still tried, and recent events",
		Example:           `  kubectl octopods audit acme -n team-a`,
		Args:              exactlyOneWorkspace,
		ValidArgsFunction: o.completeWorkspaces,
		RunE: o.onWorkspace(func(ctx context.Context, c client.Client, ns string, t settings.Target) error {
			report, err := settings.Audit(ctx, c, ns, t, o.Now())
			if err != nil {
				return err
			}
			_, err = io.WriteString(o.Out, report)
			return err
		}),
	}
}

// onWorkspace runs a command on its one target (WORKSPACE, channel/NAME or
// whatsapp/NAME) with the person's client.
func (o *Options) onWorkspace(run func(ctx context.Context, c client.Client, namespace string, t settings.Target) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		t, err := settings.ParseTarget(args[0])
		if err != nil {
			return err
		}
		c, ns, err := o.client()
		if err != nil {
			return err
		}
		return run(cmd.Context(), c, ns, t)
	}
}

// firstArg is args[0], or "" when there is none.
func firstArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

func exactlyOneWorkspace(_ *cobra.Command, args []string) error {
	if len(args) != 1 {
		return errors.New("give one WORKSPACE name, or channel/NAME or whatsapp/NAME (`kubectl octopods get`, `get channels` and `get whatsapp` list them)")
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
