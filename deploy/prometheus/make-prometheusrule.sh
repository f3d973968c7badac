#!/bin/sh
# Writes deploy/kubernetes/prometheusrule.yaml from deploy/prometheus/rules.yml: the same groups
# as a prometheus-operator PrometheusRule (kube-prometheus). Run it after editing rules.yml;
# tests/tests/alert_rules.rs fails while the two differ.
# Usage: deploy/prometheus/make-prometheusrule.sh [output]   (default: the file above)
set -eu
here=$(dirname "$0")
out=${1:-$here/../kubernetes/prometheusrule.yaml}
{
    cat <<'HEAD'
# Generated from deploy/prometheus/rules.yml by deploy/prometheus/make-prometheusrule.sh: edit
# rules.yml, then run the script. For the prometheus-operator (kube-prometheus); its Prometheus
# picks this up when the labels below match its ruleSelector (kube-prometheus: any rule;
# kube-prometheus-stack: add `release: <its Helm release>`).
#
#   kubectl apply -f deploy/kubernetes/prometheusrule.yaml
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: collector-exporter
  namespace: collector-exporter
  labels:
    app.kubernetes.io/name: collector-exporter
    prometheus: k8s
    role: alert-rules
spec:
HEAD
    # rules.yml without its leading comment block, indented under spec:.
    awk 'started || !/^#/ { started = 1; if ($0 == "") print ""; else print "  " $0 }' "$here/rules.yml"
} >"$out.tmp"
mv "$out.tmp" "$out"
