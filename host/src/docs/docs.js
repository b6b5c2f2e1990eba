// The /docs page: reads /openapi.json, lists the routes and their
// operations, and lets a user try each one from the browser.
"use strict";

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
// Most of an answer shown: streamed results can be large.
const MAX_SHOWN = 64 * 1024;

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Follow a local "$ref" ("#/components/responses/Timeout").
function resolve(spec, value) {
  let seen = 0;
  while (value && typeof value.$ref === "string" && value.$ref.startsWith("#/") && seen++ < 8) {
    value = value.$ref.slice(2).split("/").reduce((node, key) => (node ? node[key] : undefined), spec);
  }
  return value || {};
}

// The API key lives only in this field, in the page's memory: never in web
// storage or a cookie, which every page of this origin could read, and route
// components serve pages from the same origin.
function keyInput() {
  return document.getElementById("api-key");
}

async function tryOperation(path, method, operation, form, answer) {
  // Path parameters go into the template before it becomes a URL: URL
  // parsing would percent-encode the braces of {name} first.
  const inputs = [...form.querySelectorAll("input[data-in]")];
  const empty = inputs.find((input) => input.dataset.in === "path" && input.value === "");
  if (empty) {
    answer.replaceChildren(element("span", { class: "status bad" }, `Fill in ${empty.name} first: it is part of the path.`));
    return;
  }
  let filled = path;
  for (const input of inputs) {
    if (input.dataset.in === "path") filled = filled.replaceAll(`{${input.name}}`, encodeURIComponent(input.value));
  }
  const url = new URL(filled, window.location.origin);
  for (const input of inputs) {
    if (input.value !== "" && input.dataset.in === "query") url.searchParams.set(input.name, input.value);
  }
  const headers = {};
  const key = keyInput().value.trim();
  if (key && operation.security) headers["X-API-Key"] = key;
  answer.replaceChildren(element("span", { class: "status" }, "Calling…"));
  const started = performance.now();
  try {
    const response = await fetch(url, { method: method.toUpperCase(), headers });
    let text = await response.text();
    const elapsed = Math.round(performance.now() - started);
    try {
      text = JSON.stringify(JSON.parse(text), null, 2);
    } catch (_) {
      // Not one JSON document (JSON lines, text): shown as it came.
    }
    if (text.length > MAX_SHOWN) text = text.slice(0, MAX_SHOWN) + "\n… (cut)";
    const status = element("span", { class: "status " + (response.ok ? "ok" : "bad"), "data-status": response.status },
      `${response.status} ${response.statusText}`);
    const facts = [`${elapsed} ms`];
    const requestId = response.headers.get("x-request-id");
    if (requestId) facts.push(`request id ${requestId}`);
    const remaining = response.headers.get("ratelimit-remaining");
    if (remaining !== null) facts.push(`${remaining} requests left`);
    answer.replaceChildren(status, ` · ${facts.join(" · ")} · ${url.pathname}${url.search}`,
      element("pre", { class: "body" }, text));
  } catch (error) {
    answer.replaceChildren(element("span", { class: "status bad" }, `Failed: ${error.message}`));
  }
}

function renderOperation(spec, path, method, operation) {
  const params = (operation.parameters || []).map((p) => resolve(spec, p)).filter((p) => p.in === "query" || p.in === "path");
  const form = element("form", { class: "params" });
  for (const param of params) {
    const schema = param.schema || {};
    form.append(element("label", {},
      element("code", {}, param.name), param.required ? " (required)" : "",
      element("input", { name: param.name, "data-in": param.in, placeholder: schema.default !== undefined ? String(schema.default) : "" }),
      param.description ? ` ${param.description}` : ""));
  }
  const responses = element("ul", { class: "responses" });
  for (const [status, value] of Object.entries(operation.responses || {})) {
    responses.append(element("li", {}, element("code", {}, status), " ", resolve(spec, value).description || ""));
  }
  const answer = element("div", { class: "answer", "aria-live": "polite" });
  const button = element("button", { type: "submit", class: "try" }, "Try it");
  form.append(button);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    tryOperation(path, method, operation, form, answer);
  });
  const title = element("h4", {}, element("span", { class: "method" }, method), element("span", { class: "path" }, path),
    element("span", { class: "summary" }, operation.summary || ""));
  if (operation.security) title.append(element("span", { class: "summary" }, "🔑 API key"));
  const section = element("section", { class: "operation", "data-path": path, "data-method": method, id: operation.operationId || undefined },
    title);
  if (operation.description) section.append(element("p", {}, operation.description));
  section.append(form, responses, answer);
  return section;
}

function render(spec) {
  document.getElementById("version").textContent = spec.info && spec.info.version ? `v${spec.info.version}` : "";
  document.getElementById("description").textContent = (spec.info && spec.info.description) || "";

  const routes = spec["x-wasmhouse-routes"] || [];
  const body = document.querySelector("#routes tbody");
  for (const route of routes) {
    body.append(element("tr", {}, element("td", {}, route.name), element("td", {}, element("code", {}, route.prefix)),
      element("td", {}, route.version), element("td", {}, element("code", { title: route.sha256 }, String(route.sha256).slice(0, 12))),
      element("td", {}, route.api_key ? "required" : "no")));
  }
  document.getElementById("routes").hidden = routes.length === 0;

  const groups = new Map();
  for (const tag of spec.tags || []) groups.set(tag.name, { description: tag.description, operations: [] });
  for (const [path, item] of Object.entries(spec.paths || {})) {
    for (const method of METHODS) {
      const operation = item[method];
      if (!operation) continue;
      const tag = (operation.tags && operation.tags[0]) || "other";
      if (!groups.has(tag)) groups.set(tag, { operations: [] });
      groups.get(tag).operations.push([path, method, operation]);
    }
  }
  const container = document.getElementById("operations");
  let count = 0;
  for (const [name, group] of groups) {
    if (group.operations.length === 0) continue;
    const section = element("section", { class: "tag" }, element("h3", {}, name));
    if (group.description) section.append(element("p", {}, group.description));
    for (const [path, method, operation] of group.operations) {
      section.append(renderOperation(spec, path, method, operation));
      count++;
    }
    container.append(section);
  }
  const status = document.getElementById("status");
  status.textContent = `${count} operations on ${routes.length} routes.`;
  status.dataset.ready = "true";
}

async function main() {
  try {
    const response = await fetch("/openapi.json");
    if (!response.ok) throw new Error(`/openapi.json answered ${response.status}`);
    render(await response.json());
  } catch (error) {
    const status = document.getElementById("status");
    status.textContent = `Could not load the API description: ${error.message}`;
    status.dataset.ready = "error";
  }
}

main();
