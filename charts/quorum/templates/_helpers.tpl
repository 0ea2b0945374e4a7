{{- define "quorum.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, or release-chart when the release name does not contain the chart name. */}}
{{- define "quorum.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "quorum.selectorLabels" -}}
app.kubernetes.io/name: {{ include "quorum.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "quorum.labels" -}}
{{ include "quorum.selectorLabels" . }}
app.kubernetes.io/part-of: quorum
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "quorum.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "quorum.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* A pinned image reference from (dict "values" <image values> "field" <their key> "appVersion" <default tag>):
repository@digest, or repository:tag with the tag defaulting to the appVersion. */}}
{{- define "quorum.imageRef" -}}
{{- $tag := default .appVersion .values.tag }}
{{- if eq $tag "latest" }}
{{- fail (printf "%s.tag must be pinned; `latest` is not allowed" .field) }}
{{- end }}
{{- if .values.digest }}
{{- printf "%s:%s@%s" .values.repository $tag .values.digest }}
{{- else }}
{{- printf "%s:%s" .values.repository $tag }}
{{- end }}
{{- end }}

{{/* The worker/router image: given to every pod the operator creates (QUORUM_IMAGE), always admitted. */}}
{{- define "quorum.image" -}}
{{- include "quorum.imageRef" (dict "values" .Values.image "field" "image" "appVersion" .Chart.AppVersion) }}
{{- end }}

{{/* The operator's own image: `quorum operator run` only, no engines (images/README.md). */}}
{{- define "quorum.operatorImage" -}}
{{- include "quorum.imageRef" (dict "values" .Values.operatorImage "field" "operatorImage" "appVersion" .Chart.AppVersion) }}
{{- end }}

{{/* The namespaces with a Role: the watched ones, or the release namespace. */}}
{{- define "quorum.watchNamespaces" -}}
{{- $namespaces := .Values.operator.watchNamespaces | default (list .Release.Namespace) }}
{{- toJson (uniq $namespaces) }}
{{- end }}

{{/* Cluster-scoped objects carry the release namespace, so releases in two namespaces never collide. */}}
{{- define "quorum.clusterScopedName" -}}
{{- printf "%s-%s" .Release.Namespace (include "quorum.fullname" .) }}
{{- end }}
