/** A local EC2 instance metadata service and the test key that signs its identity documents. */
export { ImdsSimulator, type ImdsSimulatorOptions, type SimInstance, type ImdsRequestRecord } from './imds-simulator.js';
export { createTestCertificateAuthority, type TestCertificateAuthority } from './test-ca.js';
