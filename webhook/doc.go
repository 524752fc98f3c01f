// Package webhook will hold the admission webhooks (defaulting and
// cross-object validation) for the octopods.io API. Until they land, CEL rules
// in the CRDs and the controllers' own checks keep resources valid.
package webhook
