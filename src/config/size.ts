/** Sizes in the config are written `512KiB`, `64MiB`, `1GiB` (or a bare number of bytes). */
const UNIT_BYTES: Record<string, number> = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, KB: 1000, MB: 1000 ** 2, GB: 1000 ** 3 };

/** Parses a size into bytes; returns undefined when the text is not one. */
export function parseSize(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isSafeInteger(text) && text >= 0 ? text : undefined;
  const m = /^(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?$/.exec(text.trim());
  if (!m) return undefined;
  const bytes = Number(m[1]) * UNIT_BYTES[m[2] ?? 'B']!;
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** Bytes in the largest binary unit that divides them evenly, e.g. 16KiB. */
export function formatSize(bytes: number): string {
  for (const [unit, size] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
    if (bytes % size === 0 && bytes >= size) return `${bytes / size}${unit}`;
  }
  return `${bytes}B`;
}
