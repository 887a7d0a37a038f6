import type { CredentialConfig, PortConfig } from '../../config/config.js';
import type { SigningKeys } from '../../issuer/signing-keys.js';
import { AwsRoleProvider } from './aws-role-provider.js';
import type { CredentialProvider } from './credential-provider.js';
import { PortTokenProvider } from './port-token-provider.js';
import { SecretProvider } from './secret-provider.js';
import type { SecretRotation } from './secret-rotation.js';

export type CredentialProviders = Partial<Record<CredentialConfig['type'], CredentialProvider>>;

export interface ProviderDeps {
  config: PortConfig;
  keys: SigningKeys;
  /** Port's issuer URL (`server.public_url`). */
  issuerUrl: string;
  secrets: SecretRotation;
  /** The aws_role provider, when the relay shares its sessions (one cache for both); else a new one. */
  awsRoles?: AwsRoleProvider;
}

/**
 * One provider per credential type. A type without a provider answers 503
 * `credential_unavailable` ("not available") at release.
 */
export function credentialProviders(deps: ProviderDeps): CredentialProviders {
  return {
    port_token: new PortTokenProvider(deps.keys, deps.issuerUrl),
    secret: new SecretProvider(deps.secrets),
    aws_role: deps.awsRoles ?? new AwsRoleProvider({ issuerUrl: deps.issuerUrl, keys: deps.keys }),
  };
}
