/** Local AWS stand-ins: an STS Query API endpoint and a SigV4-checking service endpoint. */
export { StsSimulator, type StsSimulatorOptions, type SimRole, type SimIamUser, type IssuedSession, type StsCallRecord } from './sts-simulator.js';
export { AwsServiceSimulator, type ServiceRequestRecord } from './service-simulator.js';
export { AwsSimError } from './aws-sim-error.js';
export { STS_WEB_IDENTITY_ALGORITHMS, AWS_TAGS_CLAIM, type SimOidcProvider } from './web-identity.js';
export type { SimTag } from './sts-params.js';
