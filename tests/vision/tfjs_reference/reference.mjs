// Runs a TF.js graph model with the pure-JS CPU backend: the numeric reference for conversions.
// node reference.mjs MODEL.json IN_DIR OUT_DIR
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { loadGraphModel } from '@tensorflow/tfjs-converter';

const [modelPath, inDir, outDir] = process.argv.slice(2);
const artifacts = JSON.parse(fs.readFileSync(modelPath, 'utf8'));
const base = path.dirname(modelPath);
const specs = [], buffers = [];
for (const group of artifacts.weightsManifest) {
  specs.push(...group.weights);
  for (const p of group.paths) buffers.push(fs.readFileSync(path.join(base, p)));
}
const joined = Buffer.concat(buffers);
const handler = { load: async () => ({
  modelTopology: artifacts.modelTopology, format: artifacts.format, generatedBy: artifacts.generatedBy,
  convertedBy: artifacts.convertedBy, signature: artifacts.signature, userDefinedMetadata: artifacts.userDefinedMetadata,
  weightSpecs: specs, weightData: joined.buffer.slice(joined.byteOffset, joined.byteOffset + joined.byteLength),
}) };
await tf.setBackend('cpu');
const model = await loadGraphModel(handler);
const inputs = JSON.parse(fs.readFileSync(path.join(inDir, 'inputs.json'), 'utf8'));
const feeds = {};
for (const inp of inputs.inputs) {
  const raw = fs.readFileSync(path.join(inDir, inp.file));
  const ctor = inp.dtype === 'int32' ? Int32Array : Float32Array;
  const values = new ctor(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  feeds[inp.name] = tf.tensor(values, inp.shape, inp.dtype);
}
const names = inputs.outputs;
let results = await model.executeAsync(feeds, names);
if (!Array.isArray(results)) results = [results];
fs.mkdirSync(outDir, { recursive: true });
const written = [];
for (let i = 0; i < names.length; i++) {
  const t = results[i];
  const data = await t.data();
  const file = `out${i}.bin`;
  fs.writeFileSync(path.join(outDir, file), Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  written.push({ name: names[i], dtype: t.dtype, shape: t.shape, file });
}
fs.writeFileSync(path.join(outDir, 'outputs.json'), JSON.stringify({ outputs: written }));
