{{/*
Chart name, overridable with nameOverride.
*/}}
{{- define "powerplane.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, used as the prefix of every resource name.
Truncated to 63 characters because some Kubernetes name fields are limited to that.
*/}}
{{- define "powerplane.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "powerplane.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels, on every resource.
*/}}
{{- define "powerplane.labels" -}}
helm.sh/chart: {{ include "powerplane.chart" . }}
{{ include "powerplane.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: powerplane
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels (stable across upgrades; a component label is added per workload).
*/}}
{{- define "powerplane.selectorLabels" -}}
app.kubernetes.io/name: {{ include "powerplane.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Scheduler resource name; also the DNS name agents dial.
*/}}
{{- define "powerplane.schedulerName" -}}
{{- printf "%s-scheduler" (include "powerplane.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
ServiceAccount name.
*/}}
{{- define "powerplane.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "powerplane.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Container image reference.
*/}}
{{- define "powerplane.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{/*
Name of the Secret holding the scheduler's tokens.yaml.
*/}}
{{- define "powerplane.tokensSecretName" -}}
{{- if .Values.tokens.existingSecret }}
{{- .Values.tokens.existingSecret }}
{{- else }}
{{- printf "%s-tokens" (include "powerplane.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
DNS-safe form of a site id, for resource names and label values:
lower case, runs of other characters turned into "-", trimmed.
Usage: include "powerplane.siteSlug" "us_TX.1"  ->  us-tx-1
*/}}
{{- define "powerplane.siteSlug" -}}
{{- regexReplaceAll "[^a-z0-9-]+" (. | toString | lower) "-" | trunc 40 | trimAll "-" }}
{{- end }}

{{/*
Name of a site's agent Deployment (and of its chart-made token Secret).
Usage: include "powerplane.agentName" (dict "root" $ "site" $site)
*/}}
{{- define "powerplane.agentName" -}}
{{- printf "%s-agent-%s" (include "powerplane.fullname" .root) (include "powerplane.siteSlug" .site.id) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels of one site's agent pods (its Deployment, Service, PDB).
Usage: include "powerplane.agentSelectorLabels" (dict "root" $ "site" $site)
*/}}
{{- define "powerplane.agentSelectorLabels" -}}
{{ include "powerplane.selectorLabels" .root }}
app.kubernetes.io/component: agent
powerplane.io/site: {{ include "powerplane.siteSlug" .site.id | quote }}
{{- end }}

{{/*
PriorityClass of the agent pods: agent.priorityClassName, or with
agent.priorityClass.create and no name, the class the chart creates
("<fullname>-agent"); empty: none.
*/}}
{{- define "powerplane.agentPriorityClassName" -}}
{{- if .Values.agent.priorityClassName }}
{{- .Values.agent.priorityClassName }}
{{- else if .Values.agent.priorityClass.create }}
{{- printf "%s-agent" (include "powerplane.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
Where a site's agent token comes from, as a dict {secret, key}:
  - inline tokens: the per-site Secret the chart makes (key "token");
  - tokens.existingSecret: the site's own existingTokenSecret (key "token")
    if set, else tokens.existingSecret itself (key "site-<id>").
Usage: include "powerplane.agentTokenSource" (dict "root" $ "site" $site) | fromYaml
*/}}
{{- define "powerplane.agentTokenSource" -}}
{{- if not .root.Values.tokens.existingSecret }}
secret: {{ include "powerplane.agentName" . | quote }}
key: token
{{- else if .site.existingTokenSecret }}
secret: {{ .site.existingTokenSecret | quote }}
key: token
{{- else }}
secret: {{ .root.Values.tokens.existingSecret | quote }}
key: {{ printf "site-%s" (toString .site.id) | quote }}
{{- end }}
{{- end }}

{{/*
A site's --site-config file (agents/site_config.py): its `power:` block as
YAML. Used by the site's ConfigMap and by its agent's checksum annotation.
Usage: include "powerplane.siteConfig" $site
*/}}
{{- define "powerplane.siteConfig" -}}
{{- toYaml .power }}
{{- end }}

{{/*
Checks of a site's `power:` block that the JSON schema cannot express, as
agents/site_config.py makes them (so the chart refuses what the agent would):
fleets need interconnect_cap_mw, fleet ids are unique, gpu_idle_w is below
gpu_load_w (defaults 150 and 1000 W), standby_w is below the model's rated
power (scheduler/core/power.py MINER_MODELS).
Usage: include "powerplane.validateSitePower" (dict "index" $i "site" $site)
*/}}
{{- define "powerplane.validateSitePower" -}}
{{- $where := printf "sites.%d.power" (int .index) }}
{{- $power := .site.power }}
{{- $ratedW := dict "S19XP" 3010 "S21" 3500 "A2" 3730 }}
{{- $load := hasKey $power "gpu_load_w" | ternary (get $power "gpu_load_w") 1000 | float64 }}
{{- $idle := hasKey $power "gpu_idle_w" | ternary (get $power "gpu_idle_w") 150 | float64 }}
{{- if ge $idle $load }}
{{- fail (printf "%s.gpu_idle_w: must be below gpu_load_w (site %q: %v >= %v W)" $where (toString .site.id) $idle $load) }}
{{- end }}
{{- $fleets := $power.fleets | default list }}
{{- if and $fleets (not $power.interconnect_cap_mw) }}
{{- fail (printf "%s.interconnect_cap_mw: is required when the site has fleets (site %q)" $where (toString .site.id)) }}
{{- end }}
{{- $seen := dict }}
{{- range $j, $fleet := $fleets }}
{{- $id := toString $fleet.fleet_id }}
{{- if hasKey $seen $id }}
{{- fail (printf "%s.fleets.%d.fleet_id: fleet id %q is listed twice" $where (int $j) $id) }}
{{- end }}
{{- $_ := set $seen $id true }}
{{- if hasKey $fleet "standby_w" }}
{{- $rated := get $ratedW (toString $fleet.model) | float64 }}
{{- if ge ($fleet.standby_w | float64) $rated }}
{{- fail (printf "%s.fleets.%d.standby_w: must be below the %s's rated power (%v W)" $where (int $j) (toString $fleet.model) $rated) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Whether the scheduler watches its config file (scheduler.configWatchSeconds > 0,
scheduler.yaml `config_watch_s`): "true" or "".
*/}}
{{- define "powerplane.configWatch" -}}
{{- if gt (.Values.scheduler.configWatchSeconds | float64) 0.0 }}true{{ end }}
{{- end }}

{{/*
Where the scheduler's pod reads scheduler.yaml: with configWatchSeconds, in the
ConfigMap mounted as a directory (the kubelet updates it); else one file (subPath).
*/}}
{{- define "powerplane.schedulerConfigPath" -}}
{{- if include "powerplane.configWatch" . }}/etc/powerplane/config/scheduler.yaml{{ else }}/etc/powerplane/scheduler.yaml{{ end }}
{{- end }}

{{/*
What rolls the scheduler's pods when it changes: the whole ConfigMap, or with
configWatchSeconds only the values rendered into fields a reload refuses
(scheduler/server/reload.py RESTART_ONLY and the intervals); the others are
reloaded live.
*/}}
{{- define "powerplane.schedulerConfigChecksum" -}}
{{- $s := .Values.scheduler }}
{{- if include "powerplane.configWatch" . }}
{{- dict "port" $s.port "metrics" $s.metrics "dashboard" $s.dashboard "store" $s.store "leadership" $s.leadership "replicas" $s.replicas "regions" $s.regions "siteTimeoutSeconds" $s.siteTimeoutSeconds "heartbeatIntervalSeconds" $s.heartbeatIntervalSeconds "scheduleIntervalSeconds" $s.scheduleIntervalSeconds "powerIntervalSeconds" $s.power.intervalSeconds "checkpointRoot" $s.checkpointRoot "tls" $s.tls "configWatchSeconds" $s.configWatchSeconds | toJson | sha256sum }}
{{- else }}
{{- include (print $.Template.BasePath "/scheduler-configmap.yaml") . | sha256sum }}
{{- end }}
{{- end }}

{{/*
Whether the scheduler runs with leadership (several replicas on one
database, scheduler.yaml `leadership`): "true" when scheduler.replicas > 1
or scheduler.leadership.enabled, else "".
Usage: if include "powerplane.leadership" .
*/}}
{{- define "powerplane.leadership" -}}
{{- if or (gt (int .Values.scheduler.replicas) 1) .Values.scheduler.leadership.enabled }}true{{ end }}
{{- end }}

{{/*
Name of the Secret holding the PostgreSQL DSN: store.postgres.existingSecret,
or the one the chart makes from store.postgres.dsn.
*/}}
{{- define "powerplane.postgresSecretName" -}}
{{- .Values.scheduler.store.postgres.existingSecret | default (printf "%s-postgres" (include "powerplane.fullname" .) | trunc 63 | trimSuffix "-") }}
{{- end }}

{{/*
Checks of the scheduler's replicas, store and leadership values.
*/}}
{{- define "powerplane.validateScheduler" -}}
{{- $s := .Values.scheduler }}
{{- $pg := $s.store.postgres }}
{{- if and (gt (int $s.replicas) 1) (not $pg.enabled) }}
{{- fail (printf "scheduler.replicas is %d but the store is SQLite: several scheduler replicas need a shared database, set scheduler.store.postgres.enabled (with existingSecret or dsn); SQLite (one writer on a ReadWriteOnce volume) runs one replica" (int $s.replicas)) }}
{{- end }}
{{- if and $pg.enabled (not $pg.existingSecret) (not $pg.dsn) }}
{{- fail "scheduler.store.postgres.enabled is true but neither scheduler.store.postgres.existingSecret nor scheduler.store.postgres.dsn is set: name a Secret holding the DSN (key scheduler.store.postgres.secretKey), or give the DSN inline" }}
{{- end }}
{{- if include "powerplane.leadership" . }}
{{- $l := $s.leadership }}
{{- if gt (mulf 2.0 ($l.renewEveryS | float64)) (subf ($l.leaseTtlS | float64) ($l.stepDownMarginS | float64)) }}
{{- fail (printf "scheduler.leadership.renewEveryS (%v) must be at most half of leaseTtlS (%v) less stepDownMarginS (%v): a leader must get two tries to renew before it steps down" $l.renewEveryS $l.leaseTtlS $l.stepDownMarginS) }}
{{- end }}
{{- if and $s.tls.enabled (ne $s.probes.tlsProbe "grpc") }}
{{- fail "scheduler.probes.tlsProbe is tcp but leadership is on (scheduler.replicas > 1 or scheduler.leadership.enabled) with TLS: readiness must be the gRPC health check, which only the leader passes; a TCP check would make standbys Ready and put them behind the Service. Set scheduler.probes.tlsProbe: grpc (native gRPC probe with mode TLS, Kubernetes 1.37+)" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Mutual TLS (scheduler.tls.clientCaSecretName): needs TLS, a client
certificate Secret per site, and the TCP probe (the kubelet's gRPC probe
presents no client certificate, and the scheduler then requires one on every
connection), hence no leadership, whose readiness needs the gRPC probe.
*/}}
{{- define "powerplane.validateMtls" -}}
{{- $s := .Values.scheduler }}
{{- if $s.tls.clientCaSecretName }}
{{- if not $s.tls.enabled }}
{{- fail "scheduler.tls.clientCaSecretName is set but scheduler.tls.enabled is false: mutual TLS needs TLS on" }}
{{- end }}
{{- if eq $s.probes.tlsProbe "grpc" }}
{{- fail "scheduler.tls.clientCaSecretName (mutual TLS) needs scheduler.probes.tlsProbe: tcp: the kubelet's gRPC probe presents no client certificate and every connection must; so mutual TLS does not go with leadership (replicas > 1), whose readiness is the gRPC probe" }}
{{- end }}
{{- range .Values.sites }}
{{- if not .clientCertSecret }}
{{- fail (printf "sites: site %s has no clientCertSecret, which mutual TLS (scheduler.tls.clientCaSecretName) needs: a kubernetes.io/tls Secret with its certificate (URI SAN spiffe://powerplane/site/%s; `powerplane admin certs` writes one)" (toString .id) (toString .id)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Checks that need more than the JSON schema; fails the render with a clear
message. Included once from the scheduler Deployment.
*/}}
{{- define "powerplane.validate" -}}
{{- include "powerplane.validateMtls" . }}
{{- include "powerplane.validateScheduler" . }}
{{- if and .Values.scheduler.tls.enabled (not .Values.scheduler.tls.secretName) }}
{{- fail "scheduler.tls.enabled is true but scheduler.tls.secretName is empty: name a kubernetes.io/tls Secret holding tls.crt, tls.key and ca.crt" }}
{{- end }}
{{- $s := .Values.scheduler }}
{{- $ports := dict (toString $s.port) "scheduler.port" }}
{{- range $key, $p := dict "scheduler.metrics.port" $s.metrics "scheduler.dashboard.port" $s.dashboard }}
{{- if $p.enabled }}
{{- if hasKey $ports (toString $p.port) }}
{{- fail (printf "%s: port %v is already %s; the scheduler's ports must differ" $key $p.port (get $ports (toString $p.port))) }}
{{- end }}
{{- $_ := set $ports (toString $p.port) $key }}
{{- end }}
{{- end }}
{{- $np := .Values.networkPolicy }}
{{- if and $np.enabled $np.agent.restrictEgress (not $np.agent.extraEgress) }}
{{- fail "networkPolicy.agent.extraEgress is empty: with networkPolicy.agent.restrictEgress the agents would reach only the scheduler and DNS, not their Ray clusters or miners; list those as NetworkPolicyEgressRule objects, or set networkPolicy.agent.restrictEgress: false" }}
{{- end }}
{{- $seenIds := dict }}
{{- $seenNames := dict }}
{{- range $i, $site := .Values.sites }}
{{- if .power }}
{{- include "powerplane.validateSitePower" (dict "index" $i "site" $site) }}
{{- end }}
{{- $id := toString .id }}
{{- if hasKey $seenIds $id }}
{{- fail (printf "sites: site id %q is listed twice" $id) }}
{{- end }}
{{- $_ := set $seenIds $id true }}
{{- $name := include "powerplane.agentName" (dict "root" $ "site" .) }}
{{- if hasKey $seenNames $name }}
{{- fail (printf "sites: site id %q gives the resource name %q, which another site already uses; pick ids that differ after lower-casing and replacing characters other than a-z, 0-9 and -" $id $name) }}
{{- end }}
{{- $_ := set $seenNames $name true }}
{{- if not (has .region $.Values.scheduler.regions) }}
{{- fail (printf "sites: site %q has region %q, which is not in scheduler.regions %v" $id .region $.Values.scheduler.regions) }}
{{- end }}
{{- end }}
{{- if not .Values.tokens.existingSecret }}
{{- range $group := list "tenants" "operators" "sites" }}
{{- range $name, $token := (index $.Values.tokens $group) }}
{{- if not $token }}
{{- fail (printf "tokens.%s.%s is empty: set a token in values, or set tokens.existingSecret to a Secret you created (the chart generates no tokens)" $group $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- range .Values.sites }}
{{- if not (index $.Values.tokens.sites (toString .id)) }}
{{- fail (printf "tokens.sites.%s is empty: set a token in values, or set tokens.existingSecret to a Secret you created (the chart generates no tokens)" (toString .id)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Handler of the scheduler's readiness/liveness probes. Without TLS: the
kubelet's native gRPC probe (grpc.health.v1.Health/Check). With TLS the
native probe can only speak TLS via `mode: TLS` (Kubernetes 1.37+), so by
default (probes.tlsProbe: tcp) it falls back to a TCP connect check.
*/}}
{{- define "powerplane.schedulerProbeHandler" -}}
{{- $s := .Values.scheduler }}
{{- if or (not $s.tls.enabled) (eq $s.probes.tlsProbe "grpc") }}
grpc:
  port: {{ $s.port }}
  {{- with $s.probes.grpcService }}
  service: {{ . | quote }}
  {{- end }}
  {{- if $s.tls.enabled }}
  mode: TLS
  {{- end }}
{{- else }}
tcpSocket:
  port: grpc
{{- end }}
{{- end }}

{{/*
Handler of the scheduler's liveness probe. Alone: the readiness handler. With
leadership a standby's gRPC health is NOT_SERVING (readiness is leadership),
but it is alive: liveness is a TCP connect to the gRPC port.
*/}}
{{- define "powerplane.schedulerLivenessHandler" -}}
{{- if include "powerplane.leadership" . }}
tcpSocket:
  port: grpc
{{- else }}
{{- include "powerplane.schedulerProbeHandler" . }}
{{- end }}
{{- end }}

{{/*
A number as written in scheduler.yaml: whole numbers without a fraction
(30, not 3e+01), others as they are (2.5).
*/}}
{{- define "powerplane.number" -}}
{{- $n := . | float64 }}
{{- if eq $n (floor $n) }}{{ printf "%d" (int64 $n) }}{{ else }}{{ $n }}{{ end }}
{{- end }}

{{/*
A number that scheduler.yaml wants as a float: always with a fraction (1.0).
*/}}
{{- define "powerplane.float" -}}
{{- $n := . | float64 }}
{{- if eq $n (floor $n) }}{{ printf "%.1f" $n }}{{ else }}{{ $n }}{{ end }}
{{- end }}
