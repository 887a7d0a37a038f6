/**
 * The one place Port touches cedar-wasm. The `/nodejs` entry is CommonJS and reads and
 * compiles its .wasm synchronously when it is loaded (https://www.npmjs.com/package/@cedar-policy/cedar-wasm).
 *
 * It is loaded with a raised wasm tiering budget. V8 runs wasm first as baseline (Liftoff)
 * code and re-compiles a function with its optimizing compiler (TurboFan) once the
 * function has run for its tiering budget (https://v8.dev/blog/wasm-dynamic-tiering).
 * Port's start runs Cedar's schema and policy parsers once, and that alone used to send
 * 30–75 of cedar-wasm's largest functions to TurboFan on V8's worker threads: about 0.5 s
 * of CPU (on 2 cores, half of the time to ready) and some 50 MB of RSS, which glibc keeps in
 * those threads' malloc arenas after the compiler frees it — for code that start-up runs
 * once. Cedar calls cost up to a quarter more until their code is hot enough to be optimized
 * (bench/policy), and the decision memo answers most decisions without Cedar. So cedar-wasm's
 * instance starts with a budget 1,000× V8's default: only code that stays hot under
 * sustained load is optimized. V8 reads the budget when an instance is created, so it is
 * raised for this load only and put back: other wasm (undici's HTTP parser) keeps V8's
 * default. If a V8 reads it elsewhere, the only effect is V8's default tiering.
 */
import { createRequire } from 'node:module';
import { setFlagsFromString } from 'node:v8';
import type * as CedarWasm from '@cedar-policy/cedar-wasm/nodejs';

/** V8's default `--wasm-tiering-budget` (`node --v8-options`). */
const V8_TIERING_BUDGET = 1_800_000;
const CEDAR_TIERING_BUDGET = 1_000 * V8_TIERING_BUDGET;

function loadCedar(): typeof CedarWasm {
  setFlagsFromString(`--wasm-tiering-budget=${CEDAR_TIERING_BUDGET}`);
  try {
    return createRequire(import.meta.url)('@cedar-policy/cedar-wasm/nodejs') as typeof CedarWasm;
  } finally {
    setFlagsFromString(`--wasm-tiering-budget=${V8_TIERING_BUDGET}`);
  }
}

export const { getCedarVersion, policySetTextToParts, policyToJson, preparsePolicySet, preparseSchema, statefulIsAuthorized, validate } = loadCedar();
export type {
  AuthorizationAnswer,
  CedarValueJson,
  EntityJson,
  DetailedError,
  PolicyJson,
  StatefulAuthorizationCall,
  ValidationError,
} from '@cedar-policy/cedar-wasm/nodejs';
