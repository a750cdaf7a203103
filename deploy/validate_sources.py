"""The parts of a rendering that copy a source elsewhere in the repository (deploy/validate.py
calls this): the HPA asks prometheus-adapter's rule for its metric, the PrometheusRule holds
prometheus/rules/ plus the chart's own group (compared parsed, so comments do not count), the
dashboard ConfigMaps hold grafana/dashboards/ with the label Grafana's sidecar watches. Writes
rules.yml and adapter-queries.yml into OUT for promtool.
"""

import json

import yaml

from local_stack import ROOT


def check_sources(by_kind, config_maps, out, fail):
    # The HPA and prometheus-adapter agree; the adapter's queries parse (promtool, by deploy/check).
    adapter = yaml.safe_load((ROOT / "deploy" / "prometheus-adapter" / "values.yaml").read_text())
    (rule,) = adapter["rules"]["custom"]
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        for metric in hpa["spec"]["metrics"]:
            if metric["pods"]["metric"]["name"] != rule["name"]["as"]:
                fail(f"HPA metric {metric['pods']['metric']['name']} is not the adapter's {rule['name']['as']}")
    query = (rule["metricsQuery"].replace("<<.GroupBy>>", "namespace, pod")
             .replace("<<.Series>>", "http_requests_total")
             .replace("<<.LabelMatchers>>", 'namespace="shop",pod=~"a|b"'))
    (out / "adapter-queries.yml").write_text(yaml.safe_dump({"groups": [{"name": "adapter", "rules": [
        {"record": "adapter:metrics_query", "expr": query},
        {"record": "adapter:series_query", "expr": rule["seriesQuery"]}]}]}))

    # The PrometheusRule is prometheus/rules/ plus the chart's group; the dashboards are grafana's.
    for rules in by_kind.get("PrometheusRule", []):
        source = []
        for path in [ROOT / "deploy/helm/redside/files/rules/kubernetes.yml",
                     ROOT / "prometheus/rules/recording.yml", ROOT / "prometheus/rules/alerts.yml"]:
            source += yaml.safe_load(path.read_text())["groups"]
        if rules["spec"]["groups"] != source:
            fail("the PrometheusRule's groups differ from prometheus/rules/ (run deploy/generate)")
        (out / "rules.yml").write_text(yaml.safe_dump({"groups": rules["spec"]["groups"]}, sort_keys=False))
    dashboards = [cm for cm in config_maps.values() if "grafana_dashboard" in cm["metadata"]["labels"]]
    if dashboards:
        source = {p.name: json.loads(p.read_text()) for p in (ROOT / "grafana/dashboards").glob("*.json")}
        shipped = {k: json.loads(v) for cm in dashboards for k, v in cm["data"].items()}
        if shipped != source:
            fail(f"dashboard ConfigMaps {sorted(shipped)} differ from grafana/dashboards/ {sorted(source)}")
        for cm in dashboards:
            if cm["metadata"]["labels"]["grafana_dashboard"] != "1":
                fail(f"{cm['metadata']['name']}: label grafana_dashboard must be \"1\"")
