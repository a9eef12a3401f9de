{{/* The release's full name: "<release>-faxbot-operator", or the release name when it already contains the chart name. */}}
{{- define "faxbot-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "faxbot-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "faxbot-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "faxbot-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "faxbot-operator.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "faxbot-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "faxbot-operator.labels" -}}
{{ include "faxbot-operator.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "faxbot-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "faxbot-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "faxbot-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The watched namespaces as a comma-separated list (empty: all): watchNamespaces, else watchNamespace. */}}
{{- define "faxbot-operator.watchNamespaces" -}}
{{- if .Values.watchNamespaces -}}
{{- join "," (uniq .Values.watchNamespaces) -}}
{{- else -}}
{{- .Values.watchNamespace -}}
{{- end -}}
{{- end -}}

{{/* Where the operator's custom resources live for the sample and the test: the first watched namespace, else the release's. */}}
{{- define "faxbot-operator.workNamespace" -}}
{{- $watched := include "faxbot-operator.watchNamespaces" . -}}
{{- if $watched -}}
{{- first (splitList "," $watched) -}}
{{- else -}}
{{- .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{- define "faxbot-operator.leaseName" -}}
{{- default (include "faxbot-operator.fullname" .) .Values.leaderElection.leaseName -}}
{{- end -}}

{{/*
The operator's rights: exactly the verbs and resources it uses, the same rules as config/rbac/operator.yaml
(an end-to-end test compares them). Used as a ClusterRole, or as a Role in the watched namespace.
*/}}
{{- define "faxbot-operator.rules" -}}
# The three custom resources: watched, and status written with server-side apply.
- apiGroups: ["fax.faxbot.io"]
  resources: ["faxproviders", "faxpluginconfigs", "faxpluginmanifests"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["fax.faxbot.io"]
  resources: ["faxproviders/status", "faxpluginconfigs/status", "faxpluginmanifests/status"]
  verbs: ["get", "patch"]
# Owned objects, applied with server-side apply; old revisions of ConfigMaps and Secrets are pruned.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Canary analysis reads the API pods' /metrics by pod IP.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["configmaps", "secrets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# The API pods' PodDisruptionBudget (apiServer.podDisruptionBudget).
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "create", "patch", "delete"]
# Events on the custom resources (events.k8s.io/v1).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
