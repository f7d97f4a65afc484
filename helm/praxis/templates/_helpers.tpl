{{/* The three services this chart deploys, in the order they are rendered. */}}
{{- define "praxis.components" -}}
directory identity authz
{{- end -}}

{{- define "praxis.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "praxis.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Name of one component's objects: <fullname>-<component>. */}}
{{- define "praxis.componentName" -}}
{{- printf "%s-%s" (include "praxis.fullname" .root) .component -}}
{{- end -}}

{{- define "praxis.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{ include "praxis.selectorLabels" . }}
{{- end -}}

{{- define "praxis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "praxis.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "praxis.image" -}}
{{- $image := .root.Values.image -}}
{{- $repository := printf "%s-%s" $image.repositoryPrefix .component -}}
{{- if $image.registry -}}
{{- $repository = printf "%s/%s" $image.registry $repository -}}
{{- end -}}
{{- printf "%s:%s" $repository (default .root.Chart.AppVersion $image.tag) -}}
{{- end -}}

{{- define "praxis.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- include "praxis.fullname" . -}}
{{- else -}}
default
{{- end -}}
{{- end -}}

{{- define "praxis.databaseSecret" -}}
{{- default (printf "%s-database" (include "praxis.fullname" .)) .Values.database.existingSecret -}}
{{- end -}}

{{- define "praxis.redisSecret" -}}
{{- default (printf "%s-redis" (include "praxis.fullname" .)) .Values.redis.existingSecret -}}
{{- end -}}

{{- define "praxis.encryptionSecret" -}}
{{- default (printf "%s-encryption" (include "praxis.fullname" .)) .Values.encryption.existingSecret -}}
{{- end -}}

{{/* The gRPC health service a component's readiness probe asks about: "" follows every
dependency (database, cache). */}}
{{- define "praxis.apiKeyUrl" -}}
{{- printf "http://%s-identity:%v/api-keys/verify" (include "praxis.fullname" .) .Values.identity.httpPort -}}
{{- end }}

{{- define "praxis.jwksUrl" -}}
{{- printf "http://%s-identity:%v/.well-known/jwks.json" (include "praxis.fullname" .) .Values.identity.httpPort -}}
{{- end -}}

{{/* Environment every service container and migration Job shares. */}}
{{- define "praxis.commonEnv" -}}
- name: PRAXIS_CONFIG
  value: /etc/praxis/config.toml
- name: PRAXIS_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "praxis.databaseSecret" .root }}
      key: {{ printf "%s-url" .component }}
{{- if .root.Values.config.otel.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .root.Values.config.otel.endpoint | quote }}
{{- end }}
{{- if .root.Values.config.otel.resourceAttributes }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ .root.Values.config.otel.resourceAttributes | quote }}
{{- end }}
{{- end -}}
