// Package webhook holds the admission webhooks of the octopods.io API: what
// CEL in the CRDs cannot do, because it needs other objects or must talk to
// a person (defaults they can see, warnings about what will happen).
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/keyplan"
	"github.com/octopods/octopods-operator/internal/keysecret"
)

// The key webhooks run on CREATE; on UPDATE only the mutating one runs, and
// only when octopods.io/rotate changes or is applied again unchanged
// (matchConditions), to stamp the requester and warn about a used token.
// CEL refuses any change of workspaceName or secretName, and the
// controller's own metadata patches never depend on the webhook.
//
// failurePolicy=Fail: a key accepted without these checks could point at a
// foreign Secret without the person being told; the reconciler would still
// refuse to touch it, but quietly. sideEffects=None: both only read.

// The rotation stamp needs UPDATE too, but only for a change of the rotate
// annotation (matchConditions), so the controller's own patches never call
// the webhook. It is also called for an update that changes nothing while a
// rotate annotation is set (the same `kubectl annotate` pasted twice), to
// warn that nothing rotated; never for the manager's own patches. The same
// three webhooks serve the three key kinds (KeyDefaulter, KeyValidator).
// +kubebuilder:webhook:path=/mutate-octopods-io-v1alpha1-workspaceapikey,mutating=true,failurePolicy=fail,sideEffects=None,groups=octopods.io,resources=workspaceapikeys,verbs=create,versions=v1alpha1,name=mworkspaceapikey.octopods.io,admissionReviewVersions=v1,timeoutSeconds=5
// +kubebuilder:webhook:path=/mutate-octopods-io-v1alpha1-workspaceapikey,mutating=true,failurePolicy=fail,sideEffects=None,groups=octopods.io,resources=workspaceapikeys,verbs=update,versions=v1alpha1,name=mworkspaceapikey-rotate.octopods.io,admissionReviewVersions=v1,timeoutSeconds=5,patch=`{"matchConditions":[{"name":"rotate-annotation-changed-or-reapplied","expression":"(has(object.metadata.annotations) && 'octopods.io/rotate' in object.metadata.annotations ? object.metadata.annotations['octopods.io/rotate'] : '') != (has(oldObject.metadata.annotations) && 'octopods.io/rotate' in oldObject.metadata.annotations ? oldObject.metadata.annotations['octopods.io/rotate'] : '') || (has(object.metadata.annotations) && 'octopods.io/rotate' in object.metadata.annotations && has(oldObject.metadata.annotations) && object.metadata.annotations == oldObject.metadata.annotations && object.spec == oldObject.spec && request.userInfo.username != 'system:serviceaccount:octopods-system:octopods-controller-manager')"}]}`
// +kubebuilder:webhook:path=/validate-octopods-io-v1alpha1-workspaceapikey,mutating=false,failurePolicy=fail,sideEffects=None,groups=octopods.io,resources=workspaceapikeys,verbs=create,versions=v1alpha1,name=vworkspaceapikey.octopods.io,admissionReviewVersions=v1,timeoutSeconds=5
// +kubebuilder:webhook:path=/mutate-octopods-io-v1alpha1-channelapikey,mutating=true,failurePolicy=fail,sideEffects=None,groups=octopods.io,resources=channelapikeys,verbs=create,versions=v1alpha1,name=mchannelapikey.octopods.io,admissionReviewVersions=v1,timeoutSeconds=5
// +kubebuilder:webhook:path=/mutate-octopods-io-v1alpha1-channelapikey,mutating=true,failurePolicy=fail,sideEffects=None,groups=octopods.io,resources=channelapikeys,verbs=update,versions=v1alpha1,name=mchannelapikey-rotate.octopods.io,admissionReviewVersions=v1,timeoutSeconds=5,patch=`{"matchConditions":[{"name":"rotate-annotation-changed-or-reapplied","expression":"(has(object.metadata.annotations) && 'octopods.io/rotate' in object.metadata.annotations ? object.metadata.annotations['octopods.io/rotate'] : '') != (has(oldObject.metadata.annotations) && 'octopods.io/rotate' in oldObject.metadata.annotations ? oldObject.metadata.annotations['octopods.io/rotate'] : '') || (has(object.metadata.annotations) && 'octopods.io/rotate' in object.metadata.annotations && has(oldObject.metadata.annotations) && object.metadata.annotations == oldObject.metadata.annotations && object.spec == oldObject.spec && request.userInfo.username != 'system:serviceaccount:octopods-system:octopods-controller-manager')"}]}`
// +kubebuilder:webhook:path=/validate-octopods-io-v1alpha1-channelapikey,mutating=false,failurePolicy=fail,sideEffects=None,groups=octopods.io,resources=channelapikeys,verbs=create,versions=v1alpha1,name=vchannelapikey.octopods.io,admissionReviewVersions=v1,timeoutSeconds=5
// +kubebuilder:webhook:path=/mutate-octopods-io-v1alpha1-whatsappapikey,mutating=true,failurePolicy=fail,sideEffects=None,groups=octopods.io,resources=whatsappapikeys,verbs=create,versions=v1alpha1,name=mwhatsappapikey.octopods.io,admissionReviewVersions=v1,timeoutSeconds=5
// +kubebuilder:webhook:path=/mutate-octopods-io-v1alpha1-whatsappapikey,mutating=true,failurePolicy=fail,sideEffects=None,groups=octopods.io,resources=whatsappapikeys,verbs=update,versions=v1alpha1,name=mwhatsappapikey-rotate.octopods.io,admissionReviewVersions=v1,timeoutSeconds=5,patch=`{"matchConditions":[{"name":"rotate-annotation-changed-or-reapplied","expression":"(has(object.metadata.annotations) && 'octopods.io/rotate' in object.metadata.annotations ? object.metadata.annotations['octopods.io/rotate'] : '') != (has(oldObject.metadata.annotations) && 'octopods.io/rotate' in oldObject.metadata.annotations ? oldObject.metadata.annotations['octopods.io/rotate'] : '') || (has(object.metadata.annotations) && 'octopods.io/rotate' in object.metadata.annotations && has(oldObject.metadata.annotations) && object.metadata.annotations == oldObject.metadata.annotations && object.spec == oldObject.spec && request.userInfo.username != 'system:serviceaccount:octopods-system:octopods-controller-manager')"}]}`
// +kubebuilder:webhook:path=/validate-octopods-io-v1alpha1-whatsappapikey,mutating=false,failurePolicy=fail,sideEffects=None,groups=octopods.io,resources=whatsappapikeys,verbs=create,versions=v1alpha1,name=vwhatsappapikey.octopods.io,admissionReviewVersions=v1,timeoutSeconds=5

// KeyDefaulter writes out the defaults a person would otherwise have to
// know, for one key kind: the owner is the key's name (spec.workspaceName,
// channelName or whatsAppBusinessAccountName), the Secret is the owner's
// name and the kind's suffix.
// It patches only the fields that are missing, never re-encodes the object:
// a decoded-and-re-encoded object would rewrite what the person wrote
// (rotationGracePeriod "1m" as "1m0s"), and GitOps tools would then show
// drift on every sync.
type KeyDefaulter struct {
	Kind octopodsv1alpha1.KeyKind
	// Reader reads the key's owner, to make it the key's owner at creation
	// (nil: the reconciler does it, with a write of its own).
	Reader client.Reader
}

// Handle answers with JSON patch operations adding the missing fields. It
// reads only the name and the two fields it fills: any other field the
// person got wrong (a duration "1x") is left to the API server's schema,
// whose message names the field.
func (d KeyDefaulter) Handle(ctx context.Context, req admission.Request) admission.Response {
	var partial struct {
		Metadata struct {
			Name            string                  `json:"name"`
			Annotations     map[string]string       `json:"annotations"`
			Finalizers      []string                `json:"finalizers"`
			OwnerReferences []metav1.OwnerReference `json:"ownerReferences"`
		} `json:"metadata"`
		Spec map[string]any `json:"spec"`
	}
	if err := json.Unmarshal(req.Object.Raw, &partial); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("reading the %s: %w", d.Kind.Kind, err))
	}
	ownerName, _ := partial.Spec[d.Kind.OwnerField].(string) // not a string: the schema refuses it
	secretName, _ := partial.Spec["secretName"].(string)
	create := req.Operation == admissionv1.Create
	token := partial.Metadata.Annotations[octopodsv1alpha1.RotateAnnotation]
	var ops []jsonpatch.Operation
	var warnings []string
	if !create {
		var old struct {
			Metadata struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
		}
		_ = json.Unmarshal(req.OldObject.Raw, &old) // unreadable: no old token
		if token != old.Metadata.Annotations[octopodsv1alpha1.RotateAnnotation] {
			ops = stamps(partial.Metadata.Annotations, false, req.UserInfo.Username)
		}
		if secretName == "" {
			secretName = partial.Metadata.Name + d.Kind.SecretNameSuffix
		}
		warnings = d.usedTokenWarning(ctx, req.Namespace, secretName, token)
	} else {
		ops = stamps(partial.Metadata.Annotations, true, req.UserInfo.Username)
	}
	if create {
		ops = append(ops, defaults(d.Kind, partial.Metadata.Name, ownerName, secretName, partial.Spec != nil)...)
		if ownerName == "" {
			ownerName = octopodsv1alpha1.OwnerName(partial.Metadata.Name)
		}
		ops = append(ops, d.ownership(ctx, req.Namespace, ownerName, partial.Metadata.Finalizers, partial.Metadata.OwnerReferences)...)
	}
	res := admission.Patched("defaults and stamps written", ops...)
	res.Warnings = warnings
	return res
}

// usedTokenWarning tells the person who re-applies a rotation token that
// was already handled (the same command pasted twice, a GitOps tool
// reverting to an older token) that nothing rotated.
func (d KeyDefaulter) usedTokenWarning(ctx context.Context, namespace, secretName, token string) []string {
	if token == "" || d.Reader == nil {
		return nil
	}
	secret := &corev1.Secret{}
	if err := d.Reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: secretName}, secret); err != nil {
		return nil // no Secret yet: nothing was rotated with any token
	}
	used, at := keysecret.TokenUsed(secret, token)
	switch {
	case !used:
		return nil
	case at.IsZero():
		return []string{fmt.Sprintf("token %s was already used for this key (it is among the last %d tokens handled); nothing rotated; use a new token", shownToken(token), keyplan.MaxRecentTokens)}
	}
	return []string{fmt.Sprintf("token %s was already used for this key at %s; nothing rotated; use a new token", shownToken(token), at.UTC().Format(time.RFC3339))}
}

// ownership adds at creation what the reconciler would otherwise add with a
// write of its own: the revoke finalizer, and the owner (if it exists) as
// controller owner. blockOwnerDeletion stays unset: setting it would
// need the person to be allowed to update workspaces/finalizers where the
// OwnerReferencesPermissionEnforcement admission plugin runs.
func (d KeyDefaulter) ownership(ctx context.Context, namespace, ownerName string, finalizers []string, owners []metav1.OwnerReference) []jsonpatch.Operation {
	var ops []jsonpatch.Operation
	switch {
	case finalizers == nil:
		ops = append(ops, jsonpatch.NewOperation("add", "/metadata/finalizers", []string{octopodsv1alpha1.RevokeFinalizer}))
	case !slices.Contains(finalizers, octopodsv1alpha1.RevokeFinalizer):
		ops = append(ops, jsonpatch.NewOperation("add", "/metadata/finalizers/-", octopodsv1alpha1.RevokeFinalizer))
	}
	return append(ops, controllerRef(ctx, d.Reader, namespace, d.Kind.NewOwner(), d.Kind.OwnerKind, ownerName, owners)...)
}

// controllerRef adds obj (read by name, if it exists and is not being
// deleted) as the controller owner of an object being created with owners.
// blockOwnerDeletion stays unset (see ownership).
func controllerRef(ctx context.Context, reader client.Reader, namespace string, obj client.Object, kind, name string, owners []metav1.OwnerReference) []jsonpatch.Operation {
	if reader == nil || slices.ContainsFunc(owners, func(o metav1.OwnerReference) bool { return o.Controller != nil && *o.Controller }) {
		return nil
	}
	if err := reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, obj); err != nil || obj.GetDeletionTimestamp() != nil {
		return nil // not there yet: the reconciler claims it when it is
	}
	isController := true
	ref := metav1.OwnerReference{APIVersion: octopodsv1alpha1.GroupVersion.String(), Kind: kind, Name: obj.GetName(), UID: obj.GetUID(), Controller: &isController}
	var ops []jsonpatch.Operation
	if owners == nil {
		return append(ops, jsonpatch.NewOperation("add", "/metadata/ownerReferences", []metav1.OwnerReference{ref}))
	}
	return append(ops, jsonpatch.NewOperation("add", "/metadata/ownerReferences/-", ref))
}

// stamps record who created the key and who asked for its rotation, over
// anything the client sent: the webhook is called on CREATE, and on UPDATE
// only when octopods.io/rotate changes (matchConditions).
func stamps(annotations map[string]string, create bool, user string) []jsonpatch.Operation {
	set := map[string]string{octopodsv1alpha1.RotateRequestedByAnnotation: user}
	if create {
		set = map[string]string{octopodsv1alpha1.CreatedByAnnotation: user}
		if annotations[octopodsv1alpha1.RotateAnnotation] != "" {
			set[octopodsv1alpha1.RotateRequestedByAnnotation] = user
		}
	}
	if annotations == nil {
		return []jsonpatch.Operation{jsonpatch.NewOperation("add", "/metadata/annotations", set)}
	}
	var ops []jsonpatch.Operation
	for _, name := range slices.Sorted(maps.Keys(set)) {
		ops = append(ops, jsonpatch.NewOperation("add", annotationPath(name), set[name]))
	}
	if _, forged := annotations[octopodsv1alpha1.RotateRequestedByAnnotation]; forged && set[octopodsv1alpha1.RotateRequestedByAnnotation] == "" {
		// A create that asks for no rotation names no requester.
		ops = append(ops, jsonpatch.NewOperation("remove", annotationPath(octopodsv1alpha1.RotateRequestedByAnnotation), nil))
	}
	return ops
}

// annotationPath is the JSON pointer of an annotation ("/" escaped as "~1").
func annotationPath(name string) string {
	return "/metadata/annotations/" + strings.ReplaceAll(name, "/", "~1")
}

// defaults are the patch operations that fill the owner's name and
// spec.secretName when missing.
func defaults(kind octopodsv1alpha1.KeyKind, name, ownerName, secretName string, hasSpec bool) []jsonpatch.Operation {
	var ops []jsonpatch.Operation
	if ownerName == "" {
		ownerName = octopodsv1alpha1.OwnerName(name)
		ops = append(ops, jsonpatch.NewOperation("add", "/spec/"+kind.OwnerField, ownerName))
	}
	if secretName == "" && ownerName != "" {
		ops = append(ops, jsonpatch.NewOperation("add", "/spec/secretName", ownerName+kind.SecretNameSuffix))
	}
	if len(ops) > 0 && !hasSpec {
		// No spec at all ("kubectl create" with just a name): add it whole.
		spec := map[string]string{}
		for _, op := range ops {
			spec[strings.TrimPrefix(op.Path, "/spec/")] = op.Value.(string)
		}
		ops = []jsonpatch.Operation{jsonpatch.NewOperation("add", "/spec", spec)}
	}
	return ops
}

// KeyValidator refuses keys of one kind aimed at someone else's Secret and
// warns about keys that will wait for their owner.
type KeyValidator struct {
	Kind octopodsv1alpha1.KeyKind
	// Reader must confirm an absence with the API server (cachefirst): a
	// foreign Secret is not in the manager's cache, which holds the
	// operator's own Secrets only.
	Reader client.Reader
}

// Handle runs the cross-object rules on a CREATE.
func (v KeyValidator) Handle(ctx context.Context, req admission.Request) admission.Response {
	key := v.Kind.NewKey()
	if err := json.Unmarshal(req.Object.Raw, key); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("reading the %s: %w", v.Kind.Kind, err))
	}
	if key.GetNamespace() == "" {
		key.SetNamespace(req.Namespace)
	}
	warnings, err := v.validateCreate(ctx, key)
	if err != nil {
		var status apierrors.APIStatus
		if errors.As(err, &status) {
			res := admission.Denied(status.Status().Message)
			res.Result = ptr.To(status.Status())
			return res
		}
		return admission.Errored(http.StatusInternalServerError, err)
	}
	return admission.Allowed("").WithWarnings(warnings...)
}

func (v KeyValidator) validateCreate(ctx context.Context, key octopodsv1alpha1.KeyObject) ([]string, error) {
	secretName := octopodsv1alpha1.EffectiveSecretName(key)
	secret := &corev1.Secret{}
	err := v.Reader.Get(ctx, types.NamespacedName{Namespace: key.GetNamespace(), Name: secretName}, secret)
	gk := octopodsv1alpha1.GroupVersion.WithKind(v.Kind.Kind).GroupKind()
	switch {
	case err == nil && !octopodsv1alpha1.IsKeySecretOf(secret, v.Kind, key.GetName()):
		return nil, apierrors.NewInvalid(gk, key.GetName(), field.ErrorList{
			field.Invalid(field.NewPath("spec", "secretName"), secretName, fmt.Sprintf(
				"Secret %q already exists and %s; the operator never takes over, overwrites or reveals another Secret: choose another spec.secretName, or delete that Secret first",
				secretName, keysecret.Owner(secret))),
		})
	case err != nil && !apierrors.IsNotFound(err):
		return nil, apierrors.NewInternalError(fmt.Errorf("checking Secret %q: %w", secretName, err))
	}

	var warnings []string
	settings := key.Settings()
	if settings.RotationInterval != nil && (settings.RotationGracePeriod == nil || settings.RotationGracePeriod.Duration == 0) {
		warnings = append(warnings, "spec.rotationInterval with rotationGracePeriod 0s: every scheduled rotation stops the old key at once, "+
			"cutting integrations off until they reload the Secret; set spec.rotationGracePeriod (for example 1h)")
	}
	owner := v.Kind.NewOwner()
	err = v.Reader.Get(ctx, types.NamespacedName{Namespace: key.GetNamespace(), Name: key.OwnerName()}, owner)
	if apierrors.IsNotFound(err) {
		return append(warnings, fmt.Sprintf(
			"%s %q does not exist yet: the key will be issued when %s %s exists", v.Kind.OwnerKind, key.OwnerName(), v.Kind.OwnerNoun, key.OwnerName())), nil
	}
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("checking %s %q: %w", v.Kind.OwnerKind, key.OwnerName(), err))
	}
	return warnings, nil
}

// shownToken quotes a token for a warning, cut short: the rotator policy
// that bounds tokens runs after this webhook.
func shownToken(token string) string {
	const limit = 128
	if len(token) > limit {
		token = token[:limit] + "…"
	}
	return fmt.Sprintf("%q", token)
}
