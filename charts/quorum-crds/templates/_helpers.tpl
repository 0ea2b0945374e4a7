{{/* Labels on both CRDs. No selector labels: nothing selects a CRD. */}}
{{- define "quorum-crds.labels" -}}
app.kubernetes.io/name: quorum
app.kubernetes.io/part-of: quorum
app.kubernetes.io/component: crds
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- with .Values.labels }}
{{ toYaml . }}
{{- end }}
{{- end -}}
