// For `npm test` in Node: the component's WIT imports (wasmhouse:…, wasi:…)
// resolve to a stand-in module whose functions say they are not here. Routes
// that query ClickHouse run under `wasmhouse dev`, not in Node.
import { register } from 'node:module';

const names = ['execute', 'executeCached', 'server', 'replicas', 'Fields', 'OutgoingBody', 'OutgoingResponse', 'ResponseOutparam'];
const stub = names
  .map((name) => `export function ${name}() { throw new Error('${name} is a WIT import: it runs under wasmhouse, not in Node'); }`)
  .join('\n');

register(
  `data:text/javascript,${encodeURIComponent(`
    export async function resolve(specifier, context, next) {
      if (/^(wasmhouse|wasi):/.test(specifier)) {
        return { url: 'data:text/javascript,' + encodeURIComponent(${JSON.stringify(stub)}), shortCircuit: true };
      }
      return next(specifier, context);
    }`)}`,
);
