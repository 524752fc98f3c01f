package webhook

import (
	"strings"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/cachefirst"
)

// Setup registers the webhooks with the manager's webhook server: the same
// key webhooks once per key kind, the Workspace's, and the owners'. They
// read the manager's cache first, and the API server on a miss (a foreign
// Secret, an owner created a moment ago): a person's write waits on no
// read of the API server for what the cache holds. A Workspace's deletion
// is the exception.
func Setup(mgr ctrl.Manager) error {
	reader := cachefirst.Reader{Cache: mgr.GetCache(), API: mgr.GetAPIReader()}
	server := mgr.GetWebhookServer()
	for _, kind := range octopodsv1alpha1.KeyKinds {
		name := strings.ToLower(kind.Kind)
		server.Register("/mutate-octopods-io-v1alpha1-"+name, &admission.Webhook{Handler: KeyDefaulter{Kind: kind, Reader: reader}})
		server.Register("/validate-octopods-io-v1alpha1-"+name, &admission.Webhook{Handler: KeyValidator{Kind: kind, Reader: reader}})
	}
	server.Register("/mutate-octopods-io-v1alpha1-workspace", &admission.Webhook{Handler: WorkspaceDefaulter{}})
	server.Register("/mutate-octopods-io-v1alpha1-channel", &admission.Webhook{Handler: OwnedByWorkspace{Reader: reader}})
	server.Register("/mutate-octopods-io-v1alpha1-whatsappbusinessaccount", &admission.Webhook{Handler: OwnedByWorkspace{Reader: reader}})
	return ctrl.NewWebhookManagedBy(mgr, &octopodsv1alpha1.Workspace{}).
		// A Workspace's deletion reads its key from the API server: it is
		// rare, and its warning must name the key that dies with it even
		// when the key was issued a moment ago and the cache lags.
		WithValidator(WorkspaceValidator{Reader: mgr.GetAPIReader()}).
		Complete()
}
