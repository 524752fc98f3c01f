package webhook

import (
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
)

// Setup registers the webhooks with the manager's webhook server.
func Setup(mgr ctrl.Manager) error {
	reader := mgr.GetAPIReader()
	mgr.GetWebhookServer().Register("/mutate-octopods-io-v1alpha1-workspaceapikey",
		&admission.Webhook{Handler: WorkspaceAPIKeyDefaulter{Reader: reader}})
	mgr.GetWebhookServer().Register("/mutate-octopods-io-v1alpha1-workspace",
		&admission.Webhook{Handler: WorkspaceDefaulter{}})
	if err := ctrl.NewWebhookManagedBy(mgr, &octopodsv1alpha1.WorkspaceAPIKey{}).
		WithValidator(WorkspaceAPIKeyValidator{Reader: reader}).
		Complete(); err != nil {
		return err
	}
	return ctrl.NewWebhookManagedBy(mgr, &octopodsv1alpha1.Workspace{}).
		WithValidator(WorkspaceValidator{Reader: reader}).
		Complete()
}
