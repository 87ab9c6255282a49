// Runs one Code node of an exported n8n workflow the way n8n runs it, for unit tests.
//
//   node run_code_node.mjs WORKFLOW.json "Node name" < input.json
//
// input.json: {"items": [<json>, ...], "nodes": {"Other node": [<json>, ...]}, "executionId": "42",
//              "staticData": {...}, "runIndex": 0}
// Prints {"items": [<json>, ...], "staticData": {...}} (or {"error": "..."}). The code gets what n8n
// gives a Code node: $input, $json (per item), items, $('Node').first()/.all()/.item, $execution.id,
// $runIndex, $getWorkflowStaticData('global') (the workflow's static data, returned as the run left
// it, as n8n saves it after a production run), and console.
import { readFileSync } from 'node:fs';

const [workflowPath, nodeName] = process.argv.slice(2);
const workflow = JSON.parse(readFileSync(workflowPath, 'utf8'));
const node = workflow.nodes.find((n) => n.name === nodeName);
if (!node || node.type !== 'n8n-nodes-base.code') {
  console.error(`no Code node named ${JSON.stringify(nodeName)} in ${workflowPath}`);
  process.exit(2);
}
const input = JSON.parse(readFileSync(0, 'utf8'));
const wrap = (list) => (list || []).map((json) => ({ json }));
const inputItems = wrap(input.items);
const others = Object.fromEntries(Object.entries(input.nodes || {}).map(([k, v]) => [k, wrap(v)]));

const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor;
const run = new AsyncFunction(
  '$input', '$json', 'items', '$', '$execution', '$runIndex', '$getWorkflowStaticData', 'console', node.parameters.jsCode,
);
const staticData = input.staticData || {};
const getStaticData = (type) => {
  if (type !== 'global') throw new Error('only the global static data is used by these workflows');
  return staticData;
};
const runIndex = Number(input.runIndex || 0);

function selector(index) {
  // Items of earlier nodes pair with the current one by position, as they do in a linear workflow.
  return (name) => {
    if (!(name in others)) throw new Error(`Referenced node is unexecuted: ${name}`);
    const list = others[name];
    return { all: () => list, first: () => list[0], last: () => list[list.length - 1], item: list[index] };
  };
}

function normalise(result) {
  if (result === undefined || result === null) return [];
  const list = Array.isArray(result) ? result : [result];
  return list.map((entry) => {
    if (entry === null || typeof entry !== 'object' || !('json' in entry)) {
      throw new Error('A Code node must return objects with a "json" key');
    }
    return entry.json;
  });
}

const quiet = { log() {}, warn() {}, error() {}, info() {} };
const execution = { id: String(input.executionId ?? '1') };
try {
  let out = [];
  if ((node.parameters.mode || 'runOnceForAllItems') === 'runOnceForEachItem') {
    for (const [index, item] of inputItems.entries()) {
      const $input = { item, all: () => inputItems, first: () => inputItems[0] };
      const result = await run($input, item.json, inputItems, selector(index), execution, runIndex, getStaticData, quiet);
      if (Array.isArray(result)) throw new Error('Code doesn\'t return a single object');
      out = out.concat(normalise(result));
    }
  } else {
    const $input = { all: () => inputItems, first: () => inputItems[0], last: () => inputItems.at(-1) };
    out = normalise(await run($input, undefined, inputItems, selector(0), execution, runIndex, getStaticData, quiet));
  }
  process.stdout.write(JSON.stringify({ items: out, staticData }));
} catch (error) {
  process.stdout.write(JSON.stringify({ error: String(error && error.message) }));
}
