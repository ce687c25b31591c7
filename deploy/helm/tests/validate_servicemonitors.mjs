// Validates ServiceMonitors (monitoring.coreos.com/v1) against the Prometheus Operator's
// CRD schema, as packaged by @kubernetes-models/prometheus-operator: types, required
// fields, enums and patterns. (Unknown fields pass, as the CRD's schema allows them.)
// Usage: node validate_servicemonitors.mjs NODE_MODULES_DIR < servicemonitors.json
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const modules = process.argv[2];
const model = join(
  modules,
  "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor.js",
);
const { ServiceMonitor } = await import(pathToFileURL(model).href);

const monitors = JSON.parse(readFileSync(0, "utf-8"));
let failed = 0;
for (const monitor of monitors) {
  try {
    new ServiceMonitor(monitor).validate();
    console.log(`ServiceMonitor ${monitor.metadata.name}: valid`);
  } catch (error) {
    failed += 1;
    console.error(`ServiceMonitor ${monitor.metadata.name}: ${error.message}`);
  }
}
process.exit(failed ? 1 : 0);
