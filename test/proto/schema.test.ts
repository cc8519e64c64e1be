import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { it } from "node:test";
import { GEN_DIR, generateAll } from "../../src/proto/codegen/generate.js";
import {
  AuthService,
  ClusterService,
  ElectionService,
  type EtcdMethodDefinition,
  KVService,
  LeaseService,
  LockService,
  MaintenanceService,
  WatchService,
} from "../../src/proto/index.js";
import { loadReference, schemaListing } from "./reference.js";

// The golden listing was made from etcd's own .proto files (see its header), so an edit to our .proto
// that changes a number, name, type, label, oneof, enum value or method fails here, not in production.
it("our .proto files list exactly etcd v3.5.33's wire schema", () => {
  const golden = readFileSync(join(import.meta.dirname, "testdata/etcd-v3.5.33-schema.txt"), "utf8")
    .split("\n")
    .filter((line) => line !== "" && !line.startsWith("#"));
  const ours = schemaListing(loadReference());
  const missing = golden.filter((line) => !ours.includes(line));
  const extra = ours.filter((line) => !golden.includes(line));
  assert.deepEqual({ missing, extra }, { missing: [], extra: [] });
  assert.equal(ours.length, golden.length);
});

it("src/proto/gen is what npm run proto:gen makes from the .proto files today", () => {
  for (const [name, text] of generateAll()) {
    const committed = readFileSync(join(GEN_DIR, name), "utf8");
    assert.ok(committed === text, `src/proto/gen/${name} is stale: run npm run proto:gen and commit it`);
  }
});

it("every RPC of every service has its grpc-js definition: path, streaming, codecs", () => {
  const services: Record<string, Record<string, EtcdMethodDefinition<never, unknown, never, unknown>>> = {
    "etcdserverpb.KV": KVService,
    "etcdserverpb.Watch": WatchService,
    "etcdserverpb.Lease": LeaseService,
    "etcdserverpb.Cluster": ClusterService,
    "etcdserverpb.Maintenance": MaintenanceService,
    "etcdserverpb.Auth": AuthService,
    "v3lockpb.Lock": LockService,
    "v3electionpb.Election": ElectionService,
  };
  const root = loadReference();
  let methods = 0;
  for (const [name, definition] of Object.entries(services)) {
    const service = root.lookupService(name);
    assert.deepEqual(Object.keys(definition), Object.keys(service.methods), name);
    for (const method of service.methodsArray) {
      const d = definition[method.name];
      assert.ok(d !== undefined, `${name}.${method.name}`);
      assert.equal(d.path, `/${name}/${method.name}`);
      assert.equal(d.requestStream, method.requestStream === true, d.path);
      assert.equal(d.responseStream, method.responseStream === true, d.path);
      assert.equal(d.requestType.typeName, method.resolvedRequestType?.fullName.slice(1), d.path);
      assert.equal(d.responseType.typeName, method.resolvedResponseType?.fullName.slice(1), d.path);
      methods++;
    }
  }
  // KV 5, Watch 1, Lease 5, Cluster 5, Maintenance 8, Auth 17, Lock 2, Election 5.
  assert.equal(methods, 48);
});
