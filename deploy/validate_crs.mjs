// Validates Prometheus Operator resources (PodMonitor, ServiceMonitor, PrometheusRule) against
// the schemas of @kubernetes-models/prometheus-operator (generated from the operator's Go API
// types; pinned in deploy/tools/package-lock.json), offline. The generated schemas check
// types, required fields and enums but accept unknown keys, so every key is also checked
// against the type's declared fields (the package's .d.ts interfaces): a misspelt field fails
// here as the API server's strict field validation would fail it.
//
//   node deploy/validate_crs.mjs NODE_MODULES FILE.json   (a JSON array of resources)
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [modules, input] = process.argv.slice(2);
const pkg = path.join(modules, "@kubernetes-models/prometheus-operator");
const kinds = ["PodMonitor", "ServiceMonitor", "PrometheusRule"];
const models = {};
for (const kind of kinds) {
  const url = pathToFileURL(path.join(pkg, "monitoring.coreos.com/v1", `${kind}.js`)).href;
  models[kind] = (await import(url))[kind];
}

// Interfaces of the package's declarations: name -> {fields: {field -> type text}, bases: [...]},
// with the long aliases (`export type { IX as IComGithub...X }`) resolved to the short names.
const declared = {};
const alias = {};
const dir = path.join(pkg, "monitoring.coreos.com/v1");
for (const file of readdirSync(dir).filter((f) => f.endsWith(".d.ts"))) {
  const text = readFileSync(path.join(dir, file), "utf8");
  for (const m of text.matchAll(/export interface (\w+)(?: extends ([^{]+))?\s*\{([\s\S]*?)\n\}/g)) {
    const fields = {};
    for (const f of m[3].matchAll(/^ {4}"?([\w$-]+)"?\??: ([^;\n]+)/gm)) fields[f[1]] = f[2].trim();
    const bases = (m[2] || "").split(",").map((b) => b.trim()).filter(Boolean);
    declared[m[1]] = { fields, bases };
  }
  for (const m of text.matchAll(/export type \{([^}]*)\}/g)) {
    for (const a of m[1].matchAll(/(\w+) as (\w+)/g)) alias[a[2]] = a[1];
  }
}
const resolve = (name) => (declared[name] ? name : declared[alias[name]] ? alias[name] : null);

// Every field of an interface, its bases' included; null when a base is outside the package
// (then unknown keys cannot be told apart and are not reported).
function fieldsOf(iface) {
  const own = declared[iface];
  let fields = { ...own.fields };
  for (const base of own.bases) {
    const b = resolve(base);
    if (!b) return null;
    const inherited = fieldsOf(b);
    if (!inherited) return null;
    fields = { ...inherited, ...fields };
  }
  return fields;
}

function interfaceOf(typeText) {
  const t = typeText.replace(/\s*\|\s*null/g, "").replace(/^Array<(.+)>$/, "$1").trim();
  return resolve(t);
}

function unknownKeys(value, iface, at, out) {
  if (value === null || typeof value !== "object" || !iface) return;
  if (Array.isArray(value)) {
    value.forEach((v, i) => unknownKeys(v, iface, `${at}[${i}]`, out));
    return;
  }
  const fields = fieldsOf(iface);
  if (!fields) return;
  for (const [key, v] of Object.entries(value)) {
    if (!(key in fields)) {
      out.push(`${at}.${key}: unknown field (the ${iface.replace(/^I/, "")} type has ${Object.keys(fields).join(", ")})`);
      continue;
    }
    unknownKeys(v, interfaceOf(fields[key]), `${at}.${key}`, out);
  }
}

const docs = JSON.parse(readFileSync(input, "utf8"));
let failed = 0;
for (const doc of docs) {
  const name = `${doc.kind}/${doc.metadata?.name}`;
  const errors = [];
  try {
    new models[doc.kind](doc).validate();
  } catch (e) {
    errors.push(e.message);
  }
  const specType = `I${doc.kind}Spec`;
  if (!declared[specType]) errors.push(`no declaration of ${specType} in the package: cannot check fields`);
  else unknownKeys(doc.spec, specType, "spec", errors);
  if (errors.length) {
    failed++;
    for (const e of errors) console.error(`validate_crs: ${name}: ${e}`);
  } else {
    console.log(`validate_crs: ${name} valid`);
  }
}
if (!docs.length) {
  console.error("validate_crs: no resource to validate");
  process.exit(1);
}
process.exit(failed ? 1 : 0);
