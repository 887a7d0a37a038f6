/**
 * SCIMMY (RFC 7643 schemas, RFC 7644 PatchOp/filters/messages), configured once.
 * SCIMMY keeps its schema registry in module state; Port only extends the User schema
 * with the enterprise extension Entra ID and Okta send (RFC 7643 §4.3) and otherwise
 * uses its pure parts (schemas, PatchOp, Filter, ListResponse), never its global
 * resource handlers, so several Port servers can share one process.
 */
import SCIMMY from 'scimmy';

let configured = false;

export function scimmy(): typeof SCIMMY {
  if (!configured) {
    SCIMMY.Resources.User.extend(SCIMMY.Schemas.EnterpriseUser, false);
    configured = true;
  }
  return SCIMMY;
}

export const CORE_USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const CORE_GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
export const ENTERPRISE_USER = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
export const ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error';
export const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
