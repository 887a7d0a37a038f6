/**
 * Characters a job claim may carry into an IAM pattern (a session policy placeholder) or
 * into a component of the web identity token's compound `sub`: ASCII letters, digits and
 * `_ . / @ + = , # -`. Everything else is refused, never escaped, because IAM has no
 * escaping a job could rely on:
 * - `*` and `?` are wildcards in `Resource` and in `StringLike` conditions (IAM JSON policy
 *   reference, "Resource" and "String condition operators");
 * - `$`, `{`, `}` make policy variables (`${aws:username}`, "IAM policy elements: Variables");
 * - `:` separates the compound `sub`'s fields (https://buildkite.com/docs/agent/v3/cli-oidc), so a branch `main:x`
 *   would match a trust policy's `…:ref:refs/heads/main:*`;
 * - whitespace, controls, other punctuation and non-ASCII (look-alikes) have no business
 *   in a ref, a slug or a commit. Git refs can't hold `:`, `?`, `*`, `[`, `\`, `~`, `^`
 *   or spaces at all (git-check-ref-format), but a Buildkite branch is free text (API, UI).
 */
const SAFE_VALUE = /^[A-Za-z0-9_./@+=,#-]+$/;

/** Said in refusals: what a value may hold. */
export const SAFE_VALUE_DESCRIPTION = 'ASCII letters, digits and _./@+=,#-';

/**
 * The first character of `value` outside the safe set, as `U+XXXX` — a refusal names it
 * this way so no raw byte of a job-controlled value reaches an error or a log. Undefined
 * when every character is safe; `value` must not be empty (callers treat '' as missing).
 */
export function unsafeCharacter(value: string): string | undefined {
  if (SAFE_VALUE.test(value)) return undefined;
  for (const ch of value) {
    if (!SAFE_VALUE.test(ch)) return `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
  }
  return undefined;
}
