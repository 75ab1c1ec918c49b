// Validates Kubernetes objects against the API schema compiled into kubernetes-models (and its
// External Secrets and Prometheus Operator packages). Input: a JSON array of objects on stdin.
// Output: a JSON array of {index, kind, name, message} on stdout, empty when all are valid.
//
// Those validators accept unknown fields (the OpenAPI schemas do not forbid them), yet the API
// server drops or rejects them: a typo such as `readOnlyRootFileSystem` would silently disable a
// hardening rule. So each object is also validated through a recording proxy: a schema-compiled
// validator reads every property its schema declares, and enumerates the keys of maps, so a key
// it never looked at is not part of the schema.
const packages = [
  "kubernetes-models",
  "@kubernetes-models/external-secrets",
  "@kubernetes-models/prometheus-operator",
];

async function loadModel(apiVersion, kind) {
  for (const pkg of packages) {
    try {
      const module = await import(`${pkg}/${apiVersion}/${kind}`);
      if (module[kind]) {
        return module[kind];
      }
    } catch (error) {
      if (error?.code !== "ERR_PACKAGE_PATH_NOT_EXPORTED" && error?.code !== "ERR_MODULE_NOT_FOUND") {
        throw error;
      }
    }
  }
  return undefined;
}

// Wraps value so that reads are recorded per object path; returns [proxy, report()].
function track(value) {
  const seen = new Map(); // path -> { keys: Set, enumerated: bool, target }
  const wrap = (target, path) => {
    if (target === null || typeof target !== "object") {
      return target;
    }
    const entry = { keys: new Set(), enumerated: false, target };
    seen.set(path, entry);
    return new Proxy(target, {
      get(t, key, receiver) {
        if (typeof key === "string") {
          entry.keys.add(key);
          if (Object.prototype.hasOwnProperty.call(t, key)) {
            return wrap(t[key], `${path}/${key}`);
          }
        }
        return Reflect.get(t, key, receiver);
      },
      has(t, key) {
        if (typeof key === "string") {
          entry.keys.add(key);
        }
        return Reflect.has(t, key);
      },
      ownKeys(t) {
        entry.enumerated = true;
        return Reflect.ownKeys(t);
      },
      getOwnPropertyDescriptor(t, key) {
        if (typeof key === "string") {
          entry.keys.add(key);
        }
        return Reflect.getOwnPropertyDescriptor(t, key);
      },
    });
  };
  const proxy = wrap(value, "");
  const unknown = () => {
    const result = [];
    for (const [path, entry] of seen) {
      if (Array.isArray(entry.target) || entry.enumerated) {
        continue;
      }
      for (const key of Object.keys(entry.target)) {
        if (!entry.keys.has(key)) {
          result.push(`${path}/${key}`);
        }
      }
    }
    return result.sort();
  };
  return [proxy, unknown];
}

// kubernetes-models strips every schema property named "description" (it takes it for documentation),
// so PriorityClass's real top-level field is never read by the validator.
function knownButStripped(kind, path) {
  return kind === "PriorityClass" && path === "/description";
}

const input = JSON.parse(await new Promise((resolve, reject) => {
  let text = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk) => (text += chunk));
  process.stdin.on("end", () => resolve(text));
  process.stdin.on("error", reject);
}));

const errors = [];
for (const [index, object] of input.entries()) {
  const kind = object?.kind;
  const name = object?.metadata?.name ?? "<unnamed>";
  const report = (message) => errors.push({ index, kind, name, message });
  if (typeof object?.apiVersion !== "string" || typeof kind !== "string") {
    report("apiVersion and kind are required");
    continue;
  }
  const Model = await loadModel(object.apiVersion, kind);
  if (!Model) {
    report(`no schema for ${object.apiVersion} ${kind} in ${packages.join(", ")}`);
    continue;
  }
  const [proxy, unknown] = track(structuredClone(object));
  try {
    Model.prototype.validate.call(proxy);
  } catch (error) {
    report(`schema: ${error.message}`);
    continue;
  }
  for (const path of unknown().filter((p) => !knownButStripped(kind, p))) {
    report(`unknown field ${path}`);
  }
}

process.stdout.write(JSON.stringify(errors));
