import { base64url, UnsecuredJWT, type JWTClaimVerificationOptions, type JWTPayload } from 'jose';

const NONE_HEADER = base64url.encode(JSON.stringify({ alg: 'none' }));

/**
 * jose's JWT Claims Set validation — the `iss`, `aud`, `sub`, `exp`, `nbf`, `iat`/`maxTokenAge`
 * and required-claim checks of `options`, with `clockTolerance` and `currentDate` — run on
 * the payload segment of a compact JWS whose signature the caller has already verified
 * (src/identity/jws-signature.ts). Throws jose's errors, as `jwtVerify` would.
 *
 * jose exports no "validate this claim set" call. `UnsecuredJWT.decode` is the public API
 * that runs the same `validateClaimsSet` as `jwtVerify` does once the signature verified
 * (jose 6: src/jwt/unsecured.ts, src/jwt/verify.ts, src/lib/jwt_claims_set.ts), so it is
 * handed the token's own payload segment, unchanged, under an `alg: none` header made here:
 * the claims jose checks are byte for byte the ones the signature covers. That is the
 * order of RFC 7515 §5.2 (validate the signature, step 8, before trusting the payload) and
 * RFC 7519 §7.2 (claims are decoded and checked only from a validated JWS, steps 6 and
 * 9–10). `alg: none` never comes from a token here: the token's own header was checked
 * against the allow-list and its key before this is called.
 *
 * Not for `options.typ`: jose reads `typ` from the header it is given, here the `none` one.
 */
export function checkVerifiedClaims(payloadSegment: string, options: Omit<JWTClaimVerificationOptions, 'typ'>): JWTPayload {
  return UnsecuredJWT.decode(`${NONE_HEADER}.${payloadSegment}.`, options).payload;
}
