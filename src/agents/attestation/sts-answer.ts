/**
 * Reads STS Query API answers (XML; https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html
 * and "Common Errors"). Deliberately not a general XML parser: Port accepts exactly the
 * shapes STS sends — one result element with single text children, or an ErrorResponse —
 * and treats anything else as an unreadable answer.
 */

export interface CallerIdentityAnswer {
  arn: string;
  account: string;
  userId: string;
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** The `GetCallerIdentityResult` of a 200 answer, or undefined when the answer is not exactly that. */
export function parseCallerIdentity(xml: string): CallerIdentityAnswer | undefined {
  const root = /^\s*(?:<\?xml [^>]*\?>\s*)?<GetCallerIdentityResponse(?: xmlns="[^"<>]*")?>([\s\S]*)<\/GetCallerIdentityResponse>\s*$/.exec(xml);
  if (!root) return undefined;
  const result = onlyElement(root[1]!, 'GetCallerIdentityResult');
  if (result === undefined) return undefined;
  const arn = textElement(result, 'Arn');
  const account = textElement(result, 'Account');
  const userId = textElement(result, 'UserId');
  if (arn === undefined || account === undefined || userId === undefined) return undefined;
  return { arn, account, userId };
}

/** The `Code` of an STS `ErrorResponse`, when it is one and the code looks like an AWS error code. */
export function parseErrorCode(xml: string): string | undefined {
  if (!/^\s*(?:<\?xml [^>]*\?>\s*)?<ErrorResponse[\s>]/.test(xml)) return undefined;
  const error = onlyElement(xml, 'Error');
  const code = error === undefined ? undefined : textElement(error, 'Code');
  return code !== undefined && /^[A-Za-z][A-Za-z0-9.]{0,63}$/.test(code) ? code : undefined;
}

/** The inner XML of the single `<name>` element in `xml` (undefined if absent or repeated). */
function onlyElement(xml: string, name: string): string | undefined {
  const re = new RegExp(`<${name}>([\\s\\S]*?)</${name}>`, 'g');
  const found = [...xml.matchAll(re)];
  // Also refuses `<Name attr…>` and a second opening tag the lazy match skipped.
  if (found.length !== 1 || xml.match(new RegExp(`<${name}[\\s/>]`, 'g'))?.length !== 1) return undefined;
  return found[0]![1];
}

/** The text of the single `<name>` child holding only text and the five predefined entities. */
function textElement(xml: string, name: string): string | undefined {
  const inner = onlyElement(xml, name);
  if (inner === undefined || /[<>]/.test(inner)) return undefined;
  let bad = false;
  const text = inner.replace(/&([a-z]+);|&/g, (m, entity: string | undefined) => {
    const v = entity === undefined ? undefined : ENTITIES[entity];
    if (v === undefined) bad = true;
    return v ?? m;
  });
  return bad ? undefined : text.trim();
}
