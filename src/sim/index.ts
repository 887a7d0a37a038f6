/** Port's local Buildkite simulator: the OIDC token service, the REST API and webhooks, and a `buildkite-agent` stand-in. */
export { BuildkiteSimulator, parseTokenRequest, type BuildkiteSimulatorOptions } from './buildkite-oidc.js';
export { main as buildkiteAgentMain, writeBuildkiteAgentShim, compiledAgentCliPath } from './buildkite-agent.js';
export { BACKOFF_SCALE_ENV, SIM_AGENT_VERSION } from './agent-api-client.js';
export type { AgentIo } from './agent-io.js';
export {
  DEFAULT_LIFETIME_SECONDS,
  MAX_LIFETIME_SECONDS,
  OPTIONAL_CLAIMS,
  SUBJECT_CLAIMS,
  AWS_TAGS_CLAIM,
  compoundSubject,
} from './claims.js';
export { SimApiError, type SimApiErrorCode } from './errors.js';
export type { SigningKey, PublicJwk } from './keys.js';
export type { SimJob, SimJobInit, MintOptions, OidcTokenRequest, BuildSource, RunnerEnvironment } from './types.js';
export type {
  ApiRequestRecord,
  DeliverWebhookOptions,
  SimAgent,
  SimAgentConnectionState,
  SimAgentInit,
  SimAuthor,
  SimBlockField,
  SimBlockedState,
  SimBuild,
  SimBuildInit,
  SimBuildJob,
  SimBuildJobState,
  SimBuildJobType,
  SimBuildState,
  SimStepInit,
  SimUser,
  SimUserInit,
  UnblockCall,
  WebhookAuth,
  WebhookDelivery,
  WebhookTarget,
} from './build-types.js';
export { UNBLOCK_REFUSALS } from './builds.js';
export type { RateLimitOptions } from './rate-limit.js';
export { signatureHeader, webhookSignature, deliverWebhook } from './webhook-delivery.js';
export type { WebhookPayload } from './webhook-payloads.js';
export type { OutageInit, OutageMode, OutageState } from './outage.js';
