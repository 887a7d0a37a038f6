/**
 * The one place Port touches cedar-wasm. The `/nodejs` entry is CommonJS and reads its
 * .wasm synchronously (https://www.npmjs.com/package/@cedar-policy/cedar-wasm); Node's ESM loader exposes its named exports,
 * so a plain import works under NodeNext.
 */
export {
  getCedarVersion,
  policySetTextToParts,
  policyToJson,
  preparsePolicySet,
  preparseSchema,
  statefulIsAuthorized,
  validate,
} from '@cedar-policy/cedar-wasm/nodejs';
export type {
  AuthorizationAnswer,
  CedarValueJson,
  EntityJson,
  DetailedError,
  PolicyJson,
  StatefulAuthorizationCall,
  ValidationError,
} from '@cedar-policy/cedar-wasm/nodejs';
