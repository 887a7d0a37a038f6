/**
 * GET /Users and /Groups query parameters (RFC 7644 §3.4.2): `filter`, `startIndex`,
 * `count`, `attributes`, `excludedAttributes`. SCIMMY parses the filter grammar; Port
 * then accepts only what it can answer from an index — `eq` on the attributes IdPs look
 * resources up by, joined by `and` — and refuses the rest with 400 `invalidFilter`
 * rather than answer a partial or wrong list.
 */
import type { SCIMMY } from 'scimmy';
import type { ScimGroupQuery, ScimUserQuery } from '../store/repositories/scim.js';
import { ScimError } from './errors.js';
import { scimmy } from './scimmy.js';

/** The most resources one page returns (advertised as filter.maxResults). */
export const MAX_RESULTS = 200;
const DEFAULT_COUNT = 100;

export interface ListRequest<Q> {
  query: Q;
  startIndex: number;
  count: number;
  attributes?: SCIMMY.Types.Filter;
}

/** The attributes each resource type can be filtered on, by their lower-cased name. */
const USER_FILTERS = { id: 'id', username: 'userName', externalid: 'externalId' } as const;
const GROUP_FILTERS = { id: 'id', displayname: 'displayName', externalid: 'externalId' } as const;

export function userListRequest(params: Record<string, unknown>): ListRequest<ScimUserQuery> {
  const page = pagination(params);
  const where = parseFilter(params.filter, USER_FILTERS, false) as Partial<ScimUserQuery>;
  return { ...page, query: { ...where, offset: page.startIndex - 1, limit: page.count }, ...attributesOf(params) };
}

export function groupListRequest(params: Record<string, unknown>): ListRequest<ScimGroupQuery> {
  const page = pagination(params);
  const where = parseFilter(params.filter, GROUP_FILTERS, true) as Partial<ScimGroupQuery>;
  return { ...page, query: { ...where, offset: page.startIndex - 1, limit: page.count }, ...attributesOf(params) };
}

/** `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5) as the SCIMMY filter its schemas take. */
export function attributesOf(params: Record<string, unknown>): { attributes?: SCIMMY.Types.Filter } {
  const list = (v: unknown, name: string): string[] | undefined => {
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || !/^[A-Za-z0-9_.:$-]+(,[A-Za-z0-9_.:$-]+)*$/.test(v.replace(/\s+/g, ''))) {
      throw new ScimError(400, 'invalidValue', `${name} must be a comma-separated list of attribute names.`);
    }
    return v.replace(/\s+/g, '').split(',');
  };
  const include = list(params.attributes, 'attributes');
  const exclude = list(params.excludedAttributes, 'excludedAttributes');
  const expression = include ? include.map((a) => `${a} pr`).join(' and ') : exclude ? exclude.map((a) => `${a} np`).join(' and ') : undefined;
  if (expression === undefined) return {};
  try {
    return { attributes: new (scimmy().Types.Filter)(expression) };
  } catch {
    throw new ScimError(400, 'invalidValue', 'attributes / excludedAttributes names an attribute Port cannot parse.');
  }
}

/** RFC 7644 §3.4.2.4: startIndex < 1 means 1; a negative count means 0. */
function pagination(params: Record<string, unknown>): { startIndex: number; count: number } {
  const int = (v: unknown, name: string, fallback: number): number => {
    if (v === undefined) return fallback;
    if (typeof v !== 'string' || !/^-?\d{1,9}$/.test(v.trim())) throw new ScimError(400, 'invalidValue', `${name} must be an integer.`);
    return Number(v.trim());
  };
  const startIndex = Math.max(1, int(params.startIndex, 'startIndex', 1));
  const count = Math.min(MAX_RESULTS, Math.max(0, int(params.count, 'count', DEFAULT_COUNT)));
  return { startIndex, count };
}

const UNSUPPORTED = 'Port supports only "eq" filters on';

function parseFilter(filter: unknown, fields: Record<string, string>, membersFilter: boolean): Record<string, string> {
  if (filter === undefined) return {};
  const names = `${Object.values(fields).join(', ')}${membersFilter ? ' and members[value eq "…"]' : ''}`;
  if (typeof filter !== 'string' || filter.trim() === '' || filter.length > 1000) {
    throw new ScimError(400, 'invalidFilter', 'filter must be a non-empty SCIM filter expression (RFC 7644 §3.4.2.2).');
  }
  let parsed: unknown[];
  try {
    parsed = [...new (scimmy().Types.Filter)(filter)];
  } catch {
    throw new ScimError(400, 'invalidFilter', 'filter is not a valid SCIM filter expression (RFC 7644 §3.4.2.2).');
  }
  // More than one expression means `or`; Port answers conjunctions of equalities only.
  if (parsed.length !== 1 || typeof parsed[0] !== 'object' || parsed[0] === null) {
    throw new ScimError(400, 'invalidFilter', `${UNSUPPORTED} ${names}, joined by "and".`);
  }
  const where: Record<string, string> = {};
  for (const [attribute, comparison] of Object.entries(parsed[0] as Record<string, unknown>)) {
    const key = attribute.toLowerCase();
    const member = membersFilter && key === 'members' ? eqOn(comparison, 'value') : undefined;
    if (member !== undefined && !('member' in where)) {
      where.member = member;
      continue;
    }
    const field = fields[key];
    if (field === undefined || !isEq(comparison) || field in where) throw new ScimError(400, 'invalidFilter', `${UNSUPPORTED} ${names}, joined by "and".`);
    where[field] = comparison[1];
  }
  return where;
}

/** `["eq", "<string>"]`: SCIMMY's shape for one equality (its parser accepts `eq` with no value). */
function isEq(c: unknown): c is ['eq', string] {
  return Array.isArray(c) && c.length === 2 && String(c[0]).toLowerCase() === 'eq' && typeof c[1] === 'string';
}

/** `members[value eq "…"]`: the compared string, else undefined. */
function eqOn(c: unknown, sub: string): string | undefined {
  if (typeof c !== 'object' || c === null || Array.isArray(c)) return undefined;
  const entries = Object.entries(c);
  if (entries.length !== 1 || entries[0]![0].toLowerCase() !== sub) return undefined;
  const comparison = entries[0]![1];
  return isEq(comparison) ? comparison[1] : undefined;
}
