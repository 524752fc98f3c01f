// Package v1alpha1 contains the octopods.io/v1alpha1 API: Workspace,
// Channel and WhatsAppBusinessAccount, and their keys WorkspaceAPIKey,
// ChannelAPIKey and WhatsAppAPIKey.
// +kubebuilder:object:generate=true
// +groupName=octopods.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "octopods.io", Version: "v1alpha1"}

	// SchemeBuilder adds the kinds of this package to a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the kinds of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion, &Workspace{}, &WorkspaceList{}, &WorkspaceAPIKey{}, &WorkspaceAPIKeyList{},
		&Channel{}, &ChannelList{}, &ChannelAPIKey{}, &ChannelAPIKeyList{},
		&WhatsAppBusinessAccount{}, &WhatsAppBusinessAccountList{}, &WhatsAppAPIKey{}, &WhatsAppAPIKeyList{},
		&KeyDigestSlice{}, &KeyDigestSliceList{})
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
