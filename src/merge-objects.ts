/** What `{ ...a, ...b }` makes, as TypeScript types it: b's members over a's. */
export type Merged<A, B> = Omit<A, keyof B> & B;

/**
 * `{ ...a, ...b }` for the objects Port makes on every request (decision contexts, claims),
 * where the spread would cost a hidden class per object.
 *
 * Node 20's V8 (11.3) gives the copy made by an object literal that *begins* with a spread
 * a hidden class (map) outside the transition tree; whatever member follows the spread
 * then makes a new map for that one object instead of reusing a transition. Measured on
 * Node 20.20: 5,000 objects `{ ...a, x }` had 4,992 maps, at ~340 ns each against ~50 ns
 * for this function; every property access they reach goes megamorphic; and V8 allocates
 * maps in the old generation: in Port, the exchanges' records went with them, promoted
 * past young collections until a major GC (BENCHMARKS.md). `{ ...a }` alone, a literal
 * member first (`{ x, ...a }`) and `Object.assign` into a fresh `{}` all reuse maps.
 *
 * The result is what the spread makes: own enumerable properties (symbols too), later
 * sources winning. One difference is guarded: `Object.assign` *sets* where a spread
 * *defines*, and setting an own `__proto__` key (JSON.parse makes those) would change the
 * prototype; a source holding one takes the spread.
 */
export function mergeObjects<A extends object, B extends object>(a: A, b: B): Merged<A, B>;
export function mergeObjects<A extends object, B extends object, C extends object>(a: A, b: B, c: C): Merged<Merged<A, B>, C>;
export function mergeObjects<A extends object, B extends object, C extends object, D extends object>(a: A, b: B, c: C, d: D): Merged<Merged<Merged<A, B>, C>, D>;
export function mergeObjects(...sources: object[]): object {
  for (const s of sources) {
    if (Object.hasOwn(s, '__proto__')) return sources.reduce((acc, x) => ({ ...acc, ...x }), {});
  }
  return Object.assign({}, ...sources) as object;
}
