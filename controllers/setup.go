package controllers

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
)

// Options tune the controllers.
type Options struct {
	// MaxConcurrentReconciles per controller. Reconciles wait on the API
	// server, not the CPU, so a few run in parallel even on small nodes.
	MaxConcurrentReconciles int

	// afterSecretWrite is a test hook; see WorkspaceAPIKeyReconciler.
	afterSecretWrite func(ctx context.Context, secret *corev1.Secret)
}

// CacheOptions restricts the manager's Secret cache to key Secrets: the
// operator never holds other Secrets in memory, and any other Secret it must
// know about (a foreign one in the way) is read from the API server.
func CacheOptions() cache.Options {
	return cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Field: fields.OneTermEqualSelector("type", octopodsv1alpha1.SecretType)},
		},
	}
}

// Setup registers both controllers with the manager.
func Setup(mgr ctrl.Manager, opts Options) error {
	copts := controller.Options{MaxConcurrentReconciles: opts.MaxConcurrentReconciles}
	keys := &WorkspaceAPIKeyReconciler{
		Client:           mgr.GetClient(),
		APIReader:        mgr.GetAPIReader(),
		statusReporter:   statusReporter{events: mgr.GetEventRecorder("workspaceapikey-controller")},
		now:              time.Now,
		afterSecretWrite: opts.afterSecretWrite,
	}
	if err := keys.SetupWithManager(mgr, copts); err != nil {
		return err
	}
	workspaces := &WorkspaceReconciler{Client: mgr.GetClient()}
	return workspaces.SetupWithManager(mgr, copts)
}
