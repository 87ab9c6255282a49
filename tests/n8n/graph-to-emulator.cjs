// Test-only: sends n8n's requests for graph.facebook.com to the Meta emulator, outside any workflow.
//
//   GRAPH_EMULATOR_URL=http://127.0.0.1:8090 NODE_OPTIONS="--require /path/graph-to-emulator.cjs" n8n start
//
// The WhatsApp nodes and the WhatsApp Trigger call https://graph.facebook.com themselves (axios over
// node:https). This preload wraps https.request/https.get: a request for graph.facebook.com goes, with
// its method, path, query, headers and body unchanged, over plain HTTP to the emulator; every other
// request is left alone. Without GRAPH_EMULATOR_URL it does nothing.
'use strict';

const http = require('node:http');
const https = require('node:https');

const target = process.env.GRAPH_EMULATOR_URL;
const GRAPH_HOSTS = new Set(['graph.facebook.com']);

function split(args) {
  // request(url[, options][, callback]) or request(options[, callback])
  const list = [...args];
  const callback = typeof list[list.length - 1] === 'function' ? list.pop() : undefined;
  let url = null;
  if (typeof list[0] === 'string' || list[0] instanceof URL) url = new URL(String(list.shift()));
  const options = list[0] && typeof list[0] === 'object' ? list[0] : {};
  return { url, options, callback };
}

function hostOf(url, options) {
  if (url) return url.hostname;
  return String(options.hostname || options.host || '').replace(/:\d+$/, '');
}

function rerouted(args) {
  const { url, options, callback } = split(args);
  if (!GRAPH_HOSTS.has(hostOf(url, options))) return null;
  const emulator = new URL(target);
  const path = options.path || (url ? `${url.pathname}${url.search}` : '/');
  const headers = { ...(options.headers || {}) };
  for (const name of Object.keys(headers)) if (name.toLowerCase() === 'host') delete headers[name];
  const plain = {
    method: options.method || 'GET',
    headers,
    path,
    protocol: 'http:',
    hostname: emulator.hostname,
    port: emulator.port,
    timeout: options.timeout,
    signal: options.signal,
  };
  return { plain, callback };
}

if (target) {
  const originalRequest = https.request;
  https.request = function request(...args) {
    const routed = rerouted(args);
    if (!routed) return originalRequest.apply(this, args);
    return http.request(routed.plain, routed.callback);
  };
  const originalGet = https.get;
  https.get = function get(...args) {
    const routed = rerouted(args);
    if (!routed) return originalGet.apply(this, args);
    const req = http.request(routed.plain, routed.callback);
    req.end();
    return req;
  };
}
