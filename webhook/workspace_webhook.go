package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"

	"gomodules.xyz/jsonpatch/v2"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
)

// The Workspace webhook only warns, on DELETE. failurePolicy=Ignore: advice
// must never stand between a person and a deletion, even with the operator down.

// +kubebuilder:webhook:path=/validate-octopods-io-v1alpha1-workspace,mutating=false,failurePolicy=ignore,sideEffects=None,groups=octopods.io,resources=workspaces,verbs=delete,versions=v1alpha1,name=vworkspace.octopods.io,admissionReviewVersions=v1,timeoutSeconds=5

// WorkspaceValidator tells a person deleting a Workspace which key dies with it.
type WorkspaceValidator struct {
	Reader client.Reader
}

// ValidateCreate has nothing to add to CEL; it is not registered for CREATE.
func (WorkspaceValidator) ValidateCreate(context.Context, *octopodsv1alpha1.Workspace) (admission.Warnings, error) {
	return nil, nil
}

// ValidateUpdate has nothing to add to CEL; it is not registered for UPDATE.
func (WorkspaceValidator) ValidateUpdate(context.Context, *octopodsv1alpha1.Workspace, *octopodsv1alpha1.Workspace) (admission.Warnings, error) {
	return nil, nil
}

// ValidateDelete warns that deleting the Workspace revokes its key.
func (v WorkspaceValidator) ValidateDelete(ctx context.Context, ws *octopodsv1alpha1.Workspace) (admission.Warnings, error) {
	key := &octopodsv1alpha1.WorkspaceAPIKey{}
	err := v.Reader.Get(ctx, types.NamespacedName{Namespace: ws.Namespace, Name: octopodsv1alpha1.KeyName(ws.Name)}, key)
	switch {
	case err != nil:
		// No key, or a failed lookup: this is advice, never a refusal.
		return nil, nil
	case key.Status.KeyID != "":
		return admission.Warnings{fmt.Sprintf(
			"deleting Workspace %q revokes key %s (Secret %q) used by integrations", ws.Name, key.Status.KeyID, key.Status.SecretName)}, nil
	default:
		return admission.Warnings{fmt.Sprintf("deleting Workspace %q also deletes its WorkspaceAPIKey %q", ws.Name, key.Name)}, nil
	}
}

// +kubebuilder:webhook:path=/mutate-octopods-io-v1alpha1-workspace,mutating=true,failurePolicy=ignore,sideEffects=None,groups=octopods.io,resources=workspaces,verbs=create,versions=v1alpha1,name=mworkspace.octopods.io,admissionReviewVersions=v1,timeoutSeconds=5

// WorkspaceDefaulter adds the revoke finalizer at creation, which the
// reconciler would otherwise add with a write of its own. failurePolicy
// Ignore: without it the reconciler still adds the finalizer.
type WorkspaceDefaulter struct{}

// Handle patches in the finalizer when missing.
func (WorkspaceDefaulter) Handle(_ context.Context, req admission.Request) admission.Response {
	var partial struct {
		Metadata struct {
			Finalizers []string `json:"finalizers"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(req.Object.Raw, &partial); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("reading the Workspace: %w", err))
	}
	switch {
	case partial.Metadata.Finalizers == nil:
		return admission.Patched("finalizer added", jsonpatch.NewOperation("add", "/metadata/finalizers", []string{octopodsv1alpha1.RevokeFinalizer}))
	case !slices.Contains(partial.Metadata.Finalizers, octopodsv1alpha1.RevokeFinalizer):
		return admission.Patched("finalizer added", jsonpatch.NewOperation("add", "/metadata/finalizers/-", octopodsv1alpha1.RevokeFinalizer))
	}
	return admission.Allowed("finalizer present")
}

// +kubebuilder:webhook:path=/mutate-octopods-io-v1alpha1-channel,mutating=true,failurePolicy=ignore,sideEffects=None,groups=octopods.io,resources=channels,verbs=create,versions=v1alpha1,name=mchannel.octopods.io,admissionReviewVersions=v1,timeoutSeconds=5
// +kubebuilder:webhook:path=/mutate-octopods-io-v1alpha1-whatsappbusinessaccount,mutating=true,failurePolicy=ignore,sideEffects=None,groups=octopods.io,resources=whatsappbusinessaccounts,verbs=create,versions=v1alpha1,name=mwhatsappbusinessaccount.octopods.io,admissionReviewVersions=v1,timeoutSeconds=5

// OwnedByWorkspace makes a Channel's or WhatsAppBusinessAccount's
// Workspace its controller owner at creation, when the Workspace exists, so
// deleting the Workspace deletes them (and so revokes their keys) through
// the garbage collector. failurePolicy Ignore: without it, their keys'
// reconciler still revokes their keys when the Workspace goes.
type OwnedByWorkspace struct {
	Reader client.Reader
}

// Handle patches in the owner reference.
func (o OwnedByWorkspace) Handle(ctx context.Context, req admission.Request) admission.Response {
	var partial struct {
		Metadata struct {
			OwnerReferences []metav1.OwnerReference `json:"ownerReferences"`
		} `json:"metadata"`
		Spec struct {
			WorkspaceName string `json:"workspaceName"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(req.Object.Raw, &partial); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("reading the %s: %w", req.Kind.Kind, err))
	}
	ops := controllerRef(ctx, o.Reader, req.Namespace, &octopodsv1alpha1.Workspace{}, "Workspace", partial.Spec.WorkspaceName, partial.Metadata.OwnerReferences)
	if len(ops) == 0 {
		return admission.Allowed("no Workspace to own it yet")
	}
	return admission.Patched("owned by its Workspace", ops...)
}
