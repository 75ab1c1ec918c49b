// An independent client of Platform's inference.GRPCInferenceService: @grpc/grpc-js with the protocol's .proto
// loaded at run time by @grpc/proto-loader (no generated code shared with the server).
//
// Reads a JSON job on stdin:
//   { "address": "127.0.0.1:5123", "proto": "/path/grpc_service.proto", "apiKey": "pk_...",
//     "model": "m", "id": "req-1", "inputs": [{ "name", "datatype", "shape", "data" (base64, raw little-endian) }],
//     "expectClasses": 4 }
// Calls ServerLive, ServerMetadata, ModelMetadata and ModelInfer (raw_input_contents), checks the answers on its own
// (liveness, the declared input, an FP32 [rows, classes] output whose rows are probabilities summing to 1), then calls
// ModelInfer without a key and expects UNAUTHENTICATED. Prints one JSON line with the outputs (base64) and what it
// checked; exits 1 with the reason when a check fails.
'use strict';

const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

function readStdin() {
  return new Promise((resolve, reject) => {
    let text = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (chunk) => { text += chunk; });
    process.stdin.on('end', () => resolve(text));
    process.stdin.on('error', reject);
  });
}

function call(client, method, request, metadata) {
  return new Promise((resolve, reject) => {
    client[method](request, metadata, { deadline: Date.now() + 30000 }, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

function fail(message) {
  process.stderr.write(`check failed: ${message}\n`);
  process.exit(1);
}

async function main() {
  const job = JSON.parse(await readStdin());
  const definition = protoLoader.loadSync(job.proto, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  const inference = grpc.loadPackageDefinition(definition).inference;
  const client = new inference.GRPCInferenceService(job.address, grpc.credentials.createInsecure());
  const withKey = new grpc.Metadata();
  withKey.add('authorization', `Bearer ${job.apiKey}`);

  const live = await call(client, 'ServerLive', {}, new grpc.Metadata());
  if (live.live !== true) fail('ServerLive did not answer live=true');
  const server = await call(client, 'ServerMetadata', {}, new grpc.Metadata());
  if (!server.extensions.includes('statistics')) fail(`ServerMetadata extensions ${server.extensions} lack statistics`);

  const metadata = await call(client, 'ModelMetadata', { name: job.model }, withKey);
  const declared = metadata.inputs.find((i) => i.name === job.inputs[0].name);
  if (!declared || declared.datatype !== job.inputs[0].datatype) fail(`ModelMetadata does not declare input ${job.inputs[0].name} ${job.inputs[0].datatype}`);

  const request = {
    model_name: job.model,
    id: job.id,
    inputs: job.inputs.map((i) => ({ name: i.name, datatype: i.datatype, shape: i.shape })),
    raw_input_contents: job.inputs.map((i) => Buffer.from(i.data, 'base64')),
  };
  const response = await call(client, 'ModelInfer', request, withKey);
  if (response.model_name !== job.model) fail(`model_name ${response.model_name}`);
  if (response.id !== job.id) fail(`id ${response.id} is not ${job.id}`);
  if (response.raw_output_contents.length !== response.outputs.length) fail('one raw_output_contents entry per output expected');

  const rows = Number(job.inputs[0].shape[0]);
  const output = response.outputs[0];
  const data = response.raw_output_contents[0];
  const shape = output.shape.map(Number);
  if (output.datatype !== 'FP32') fail(`output datatype ${output.datatype}`);
  if (shape.length !== 2 || shape[0] !== rows || shape[1] !== job.expectClasses) fail(`output shape [${shape}]`);
  if (data.length !== rows * job.expectClasses * 4) fail(`output holds ${data.length} bytes`);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let c = 0; c < job.expectClasses; c++) {
      const p = data.readFloatLE((r * job.expectClasses + c) * 4);
      if (!(p >= 0 && p <= 1)) fail(`row ${r} class ${c} is ${p}, not a probability`);
      sum += p;
    }
    if (Math.abs(sum - 1) > 1e-4) fail(`row ${r} sums to ${sum}`);
  }

  let refusal = null;
  try {
    await call(client, 'ModelInfer', request, new grpc.Metadata());
  } catch (error) {
    refusal = { code: error.code, details: error.details };
  }
  if (!refusal || refusal.code !== grpc.status.UNAUTHENTICATED) fail(`without a key: ${JSON.stringify(refusal)}`);

  client.close();
  process.stdout.write(JSON.stringify({
    model_name: response.model_name,
    model_version: response.model_version,
    id: response.id,
    outputs: response.outputs.map((o, i) => ({ name: o.name, datatype: o.datatype, shape: o.shape.map(Number), data: response.raw_output_contents[i].toString('base64') })),
    refusal,
    checked: ['ServerLive', 'ServerMetadata', 'ModelMetadata', 'ModelInfer', 'probabilities', 'UNAUTHENTICATED'],
  }) + '\n');
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
