{{/* Names and labels. */}}
{{- define "dossier.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "dossier.fullname" -}}
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

{{- define "dossier.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dossier.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "dossier.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "dossier.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dossier
{{- end -}}

{{- define "dossier.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "dossier.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image, by digest when one is given. */}}
{{- define "dossier.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* existingSecret, or a clear failure. */}}
{{- define "dossier.secretName" -}}
{{- required "existingSecret is required: create a Secret in the release namespace holding DATABASE_URL, DOSSIER_ENCRYPTION_KEYS and DOSSIER_LOOKUP_KEY (and DOSSIER_RAILS_TOKEN and the vendor credentials when used), then set existingSecret=<its name>. The chart never creates or generates keys: see docs/deploy.md" .Values.existingSecret -}}
{{- end -}}

{{/*
A duration as the binary writes it (500ms, 5s, 2m, 1h) in whole seconds, rounded up.
The schema restricts the form; this only converts.
*/}}
{{- define "dossier.seconds" -}}
{{- $d := toString . -}}
{{- if hasSuffix "ms" $d -}}
{{- $ms := trimSuffix "ms" $d | int -}}
{{- div (add $ms 999) 1000 -}}
{{- else if hasSuffix "s" $d -}}
{{- trimSuffix "s" $d | int -}}
{{- else if hasSuffix "m" $d -}}
{{- mul (trimSuffix "m" $d | int) 60 -}}
{{- else if hasSuffix "h" $d -}}
{{- mul (trimSuffix "h" $d | int) 3600 -}}
{{- else -}}
{{- fail (printf "cannot read the duration %q: write it like 500ms, 5s, 2m or 1h" $d) -}}
{{- end -}}
{{- end -}}

{{/*
terminationGracePeriodSeconds: above delay + grace + 5 s of audit flush
(docs/operations.md#graceful-shutdown). The grace already includes the delay, so this
counts the delay twice: a margin that costs nothing unless a pod really hangs.
*/}}
{{- define "dossier.terminationGrace" -}}
{{- $delay := include "dossier.seconds" .Values.server.shutdownDelay | int -}}
{{- $grace := include "dossier.seconds" .Values.server.shutdownGrace | int -}}
{{- if lt $grace $delay -}}
{{- fail (printf "server.shutdownGrace (%s) must be at least server.shutdownDelay (%s): the grace is counted from SIGTERM and includes the delay" .Values.server.shutdownGrace .Values.server.shutdownDelay) -}}
{{- end -}}
{{- $floor := add $delay $grace 5 -}}
{{- $set := int .Values.terminationGracePeriodSeconds -}}
{{- if eq $set 0 -}}
{{- add $floor 5 -}}
{{- else if le $set $floor -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be above shutdownDelay + shutdownGrace + 5 s of audit flush (%d), or the kubelet kills pods mid-drain; set it to 0 to have it computed" $set $floor) -}}
{{- else -}}
{{- $set -}}
{{- end -}}
{{- end -}}

{{/*
"true" when the ConfigMap has a file to hold (policy, upstreams, access policy, the
reviewers' JWKS), else empty: the ConfigMap, its volume and its mount exist only then.
*/}}
{{- define "dossier.configFiles" -}}
{{- $jwks := (.Values.reviewers | default dict).jwks | default "" -}}
{{- if or .Values.config.policy .Values.config.upstreams .Values.config.notices .Values.config.accessPolicy (trim $jwks) -}}true{{- end -}}
{{- end -}}

{{/*
"true" when reviewers' ID tokens are configured, else empty. validate.yaml has already
refused a partial set, so the three are set together or not at all.
*/}}
{{- define "dossier.reviewers" -}}
{{- $r := .Values.reviewers | default dict -}}
{{- if and (trim ($r.issuer | default "")) (trim ($r.audience | default "")) (trim ($r.jwks | default "")) -}}true{{- end -}}
{{- end -}}

{{/* Port the kubelet's probes use: the gRPC port, or the plaintext health port under TLS. */}}
{{- define "dossier.healthPortName" -}}
{{- if .Values.tls.enabled -}}health{{- else -}}grpc{{- end -}}
{{- end -}}

{{/*
The volume source of the TLS files: tls.certificates.volume, or by default cert-manager's
csi-driver-spiffe. That driver writes the key readable by one group only, the fs-group
attribute: the pod's runAsGroup, so the non-root server can read it.
*/}}
{{- define "dossier.tlsCertificatesVolume" -}}
{{- if .Values.tls.certificates.volume -}}
{{- toYaml .Values.tls.certificates.volume -}}
{{- else -}}
csi:
  driver: spiffe.csi.cert-manager.io
  readOnly: true
  volumeAttributes:
    spiffe.csi.cert-manager.io/fs-group: {{ printf "%d" (int .Values.runAsGroup) | quote }}
{{- end -}}
{{- end -}}

{{/*
One tls.sidecars container (dict "container" C "Values" .Values), as a one-item YAML list.
With tls.workloadApi.enabled it gets the Workload API socket, read-only, and
SPIFFE_ENDPOINT_SOCKET, unless it already mounts or sets them: the socket is for the
sidecar that turns SVIDs into files, never for the server container.
*/}}
{{- define "dossier.tlsSidecar" -}}
{{- $c := deepCopy .container -}}
{{- $wa := .Values.tls.workloadApi -}}
{{- if $wa.enabled -}}
{{- $mounts := get $c "volumeMounts" | default list -}}
{{- $hasMount := false -}}
{{- range $mounts -}}
{{- if eq (get . "name") "spiffe-workload-api" -}}{{- $hasMount = true -}}{{- end -}}
{{- end -}}
{{- if not $hasMount -}}
{{- $mounts = append $mounts (dict "name" "spiffe-workload-api" "mountPath" $wa.mountPath "readOnly" true) -}}
{{- end -}}
{{- $_ := set $c "volumeMounts" $mounts -}}
{{- $env := get $c "env" | default list -}}
{{- $hasEnv := false -}}
{{- range $env -}}
{{- if eq (get . "name") "SPIFFE_ENDPOINT_SOCKET" -}}{{- $hasEnv = true -}}{{- end -}}
{{- end -}}
{{- if not $hasEnv -}}
{{- $env = append $env (dict "name" "SPIFFE_ENDPOINT_SOCKET" "value" (printf "unix://%s/%s" $wa.mountPath $wa.socketName)) -}}
{{- end -}}
{{- $_ := set $c "env" $env -}}
{{- end -}}
{{- list $c | toYaml -}}
{{- end -}}

{{/* Secret environment variables: name -> key. */}}
{{- define "dossier.secretEnvNames" -}}
{{- $names := list "DATABASE_URL" "DOSSIER_ENCRYPTION_KEYS" "DOSSIER_LOOKUP_KEY" "DOSSIER_RAILS_TOKEN" -}}
{{- concat $names .Values.vendorCredentials | toJson -}}
{{- end -}}

{{/* Pod security context shared by every pod of the chart. */}}
{{- define "dossier.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.runAsUser }}
runAsGroup: {{ .Values.runAsGroup }}
fsGroup: {{ .Values.runAsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container security context shared by every container of the chart. */}}
{{- define "dossier.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.runAsUser }}
runAsGroup: {{ .Values.runAsGroup }}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The DATABASE_URL variable, from existingSecret. */}}
{{- define "dossier.databaseUrlEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "dossier.secretName" . }}
      key: {{ .Values.secretKeys.databaseUrl }}
{{- end -}}

{{/*
Upstreams named in the upstreams file that lack `fleet_limit = true`: their rate is
per pod. The file's tables are split on the upstream headers (and [waterfalls]). A
second vendor counts only when the file has its table (it is asked only when a
waterfall names it, which needs that table's credential_env).
*/}}
{{- define "dossier.perPodUpstreams" -}}
{{- $file := .Values.config.upstreams -}}
{{- $per := list -}}
{{- range $u := list "rails" "property_records" "valuation" "identity" "licensing" "registry" "alt_valuation" "alt_identity" -}}
{{- $section := regexFind (printf "(?ms)^\\[%s\\][ \\t]*(#[^\\n]*)?$.*?(^\\[(rails|property_records|valuation|identity|licensing|registry|alt_valuation|alt_identity|waterfalls[.a-z_]*)\\][ \\t]*(#[^\\n]*)?$|\\z)" $u) $file -}}
{{- $optional := has $u (list "alt_valuation" "alt_identity") -}}
{{- if and (or (not $optional) $section) (not (regexMatch "(?m)^[ \\t]*fleet_limit[ \\t]*=[ \\t]*true\\b" $section)) -}}
{{- $per = append $per $u -}}
{{- end -}}
{{- end -}}
{{- $per | toJson -}}
{{- end -}}

{{/* Variables named by credential_env in the upstreams file. */}}
{{- define "dossier.credentialEnvs" -}}
{{- $names := list -}}
{{- range $m := regexFindAll "(?m)^[ \\t]*credential_env[ \\t]*=[ \\t]*\"[^\"]*\"" .Values.config.upstreams -1 -}}
{{- $names = append $names (regexReplaceAll "^[^\"]*\"([^\"]*)\"$" $m "${1}") -}}
{{- end -}}
{{- $names | uniq | toJson -}}
{{- end -}}

{{/* Names of the [[caller]] entries of the access policy (`name = "..."` lines), for NOTES. */}}
{{- define "dossier.accessPolicyCallers" -}}
{{- $names := list -}}
{{- range $m := regexFindAll "(?m)^[ \\t]*name[ \\t]*=[ \\t]*\"[^\"]*\"" .Values.config.accessPolicy -1 -}}
{{- $names = append $names (regexReplaceAll "^[^\"]*\"([^\"]*)\"$" $m "${1}") -}}
{{- end -}}
{{- $names | toJson -}}
{{- end -}}

{{/*
"true" when the access policy grants ReviewApplication to some caller (the method, its
service's "/*" or "*"), for NOTES. Comments are dropped first; a text match, not a parse.
*/}}
{{- define "dossier.accessPolicyGrantsReview" -}}
{{- $policy := regexReplaceAll "(?m)#.*$" .Values.config.accessPolicy "" -}}
{{- if regexMatch "\"(dossier\\.v1\\.UnderwritingService/(ReviewApplication|\\*)|\\*)\"" $policy -}}true{{- end -}}
{{- end -}}

{{/* Egress rules every pod of the chart needs: cluster DNS and PostgreSQL. */}}
{{- define "dossier.egressDnsPostgres" -}}
{{- $np := .Values.networkPolicy -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ $np.egress.dns.namespace }}
      podSelector:
        matchLabels:
          {{- toYaml $np.egress.dns.podLabels | nindent 10 }}
  ports:
    - port: {{ $np.egress.dns.port }}
      protocol: UDP
    - port: {{ $np.egress.dns.port }}
      protocol: TCP
- to:
    {{- range $np.egress.postgres.cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    {{- range $np.egress.postgres.ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- end -}}
