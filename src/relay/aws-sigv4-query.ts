import type { InjectConfig } from '../config/config.js';
import { RelayError } from './relay-error.js';

/**
 * S3 sub-resources refused on `service: s3` upstreams unless `aws_sigv4.allow_subresources`
 * lists them. On S3 the query, not the method and path `proxy` decides on, picks
 * these operations ("Amazon S3 subresources": the `?acl` of PutObjectAcl, the `?policy` of
 * PutBucketPolicy…), so a policy allowing `PUT` on a path would allow them all. Listed:
 * those that change who may read or write (acl, policy, publicAccessBlock,
 * ownershipControls, cors, website; tagging, which ABAC conditions test), send data or
 * events elsewhere (replication, logging, notification, inventory, analytics, metrics,
 * metadataTable, metadataConfiguration), decide whether data survives or can be deleted
 * (lifecycle, versioning, object-lock, retention, legal-hold, encryption,
 * intelligent-tiering), shift cost (accelerate, requestPayment), act on objects the path
 * doesn't name (delete: DeleteObjects takes its keys from the body; renameObject), or hand
 * out credentials (session: S3 Express CreateSession). Other keys (list-type, uploads,
 * uploadId, versionId, restore…) reach policy as `context.aws_query_keys`.
 */
export const S3_GUARDED_SUBRESOURCES: readonly string[] = [
  'acl',
  'policy',
  'publicAccessBlock',
  'ownershipControls',
  'cors',
  'website',
  'tagging',
  'replication',
  'logging',
  'notification',
  'inventory',
  'analytics',
  'metrics',
  'metadataTable',
  'metadataConfiguration',
  'lifecycle',
  'versioning',
  'object-lock',
  'retention',
  'legal-hold',
  'encryption',
  'intelligent-tiering',
  'accelerate',
  'requestPayment',
  'delete',
  'renameObject',
  'session',
];

/** Lower-case name → AWS's spelling. */
const GUARDED = new Map(S3_GUARDED_SUBRESOURCES.map((s) => [s.toLowerCase(), s]));

/** AWS's spelling of a guarded sub-resource named in any case, or undefined when it is not one. */
export function guardedS3Subresource(name: string): string | undefined {
  return GUARDED.get(name.toLowerCase());
}

/**
 * The query parameter names of a request to an `aws_sigv4` upstream, as AWS reads them
 * (percent-decoded, RFC 3986 §2.1), lower-cased, deduplicated and sorted: they become
 * `context.aws_query_keys` of the `proxy` decision (values never do). Undefined for other
 * upstreams. Refuses, before policy:
 * - a name that is not valid percent-encoding or decodes to a control character (400);
 * - any `x-amz-*` name (400): S3 reads them as the headers of the same name (pre-signed
 *   URLs carry headers that way; @smithy/signature-v4 `moveHeadersToQuery`), which would
 *   bypass `forward_headers`, and Port signs with headers, never the query;
 * - on `service: s3`, a guarded sub-resource the upstream doesn't allow (403).
 */
export function awsQueryKeysOf(inject: InjectConfig | undefined, query: string): string[] | undefined {
  if (inject?.kind !== 'aws_sigv4') return undefined;
  const keys = new Set<string>();
  for (const part of query.replace(/^\?/, '').split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    keys.add(decodeName(eq < 0 ? part : part.slice(0, eq)).toLowerCase());
  }
  for (const key of keys) {
    if (key.replaceAll('_', '-').startsWith('x-amz-')) {
      throw new RelayError(
        'invalid_request',
        'The query names an x-amz-* parameter; AWS reads those as headers, so send it as a header (the upstream forward_headers decide which pass).',
        400,
      );
    }
    if (inject.service !== 's3') continue;
    const guarded = GUARDED.get(key);
    if (guarded !== undefined && !inject.allowSubresources.includes(key)) {
      throw new RelayError(
        'subresource_not_allowed',
        `The S3 sub-resource ?${guarded} is not allowed on this upstream (it changes permissions, configuration or retention, or acts beyond the path); an operator can list it in aws_sigv4.allow_subresources.`,
        403,
      );
    }
  }
  return [...keys].sort();
}

function decodeName(raw: string): string {
  let name: string;
  try {
    name = decodeURIComponent(raw);
  } catch {
    throw new RelayError('invalid_request', 'A query parameter name is not valid percent-encoding (RFC 3986 §2.1).', 400);
  }
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(name)) throw new RelayError('invalid_request', 'A query parameter name decodes to a control character.', 400);
  return name;
}
