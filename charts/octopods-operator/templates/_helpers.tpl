{{/* The image of both binaries. */}}
{{- define "octopods.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* Scheduling and pod metadata shared by both Deployments: $ is the root, .c the component's values. */}}
{{- define "octopods.podScheduling" -}}
{{- with .c.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
The webhook serving certificate when cert-manager does not issue it: a CA
and a certificate generated once and kept across upgrades (read back from
the Secret), computed once per render so the Secret and every caBundle agree.
*/}}
{{- define "octopods.webhookCert" -}}
{{- if not (hasKey .Values "generatedWebhookCert") }}
{{- $secret := lookup "v1" "Secret" .Release.Namespace "webhook-server-cert" }}
{{- $metrics := lookup "v1" "Secret" .Release.Namespace "metrics-server-cert" }}
{{- if and $secret $secret.data (hasKey $secret.data "ca.crt") $metrics $metrics.data }}
{{- $_ := set .Values "generatedWebhookCert" (dict "ca" (index $secret.data "ca.crt") "crt" (index $secret.data "tls.crt") "key" (index $secret.data "tls.key") "metricsCrt" (index $metrics.data "tls.crt") "metricsKey" (index $metrics.data "tls.key")) }}
{{- else }}
{{- $ca := genCA "octopods-webhook-ca" 3650 }}
{{- $svc := "octopods-webhook-service" }}
{{- $names := list (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) }}
{{- $cert := genSignedCert (first $names) nil $names 3650 $ca }}
{{- $msvc := "octopods-controller-manager-metrics" }}
{{- $mnames := list (printf "%s.%s.svc" $msvc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $msvc .Release.Namespace) }}
{{- $mcert := genSignedCert (first $mnames) nil $mnames 3650 $ca }}
{{- $_ := set .Values "generatedWebhookCert" (dict "ca" ($ca.Cert | b64enc) "crt" ($cert.Cert | b64enc) "key" ($cert.Key | b64enc) "metricsCrt" ($mcert.Cert | b64enc) "metricsKey" ($mcert.Key | b64enc)) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The annotation with which cert-manager injects the webhooks' CA. */}}
{{- define "octopods.caInjectAnnotation" -}}
{{- if .Values.webhook.certManager.enabled -}}
cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/octopods-serving-cert
{{- end }}
{{- end }}

{{/* The webhooks' caBundle when the chart generates the certificate. */}}
{{- define "octopods.caBundle" -}}
{{- if .Values.webhook.certManager.enabled -}}
{{- else if .Values.webhook.certs.existingSecret -}}
caBundle: {{ required "webhook.certs.caBundle: give the CA (base64 PEM) of webhook.certs.existingSecret" .Values.webhook.certs.caBundle }}
{{- else -}}
{{- include "octopods.webhookCert" . -}}
caBundle: {{ .Values.generatedWebhookCert.ca }}
{{- end }}
{{- end }}

{{/* The Secrets the manager serves its webhooks and metrics with. */}}
{{- define "octopods.webhookCertSecret" -}}
{{- if and .Values.webhook.certs.existingSecret .Values.webhook.certManager.enabled -}}
{{- fail "webhook.certs.existingSecret needs webhook.certManager.enabled=false: the certificate comes either from cert-manager or from you" -}}
{{- end -}}
{{ .Values.webhook.certs.existingSecret | default "webhook-server-cert" }}
{{- end }}
{{- define "octopods.metricsCertSecret" -}}
{{ .Values.webhook.certs.existingSecret | default "metrics-server-cert" }}
{{- end }}
