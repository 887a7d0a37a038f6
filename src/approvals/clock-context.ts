/** One formatter per time zone: building an Intl.DateTimeFormat costs ~50 µs, using one ~2 µs. */
const formatters = new Map<string, Intl.DateTimeFormat>();

/** `hour` (0–23) and `weekday` (0 = Sunday) at `now` in an IANA time zone, for `unblock` policies. */
export function clockContext(now: number, timeZone: string): { hour: number; weekday: number } {
  let format = formatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', { timeZone, hour: 'numeric', hourCycle: 'h23', weekday: 'short' });
    formatters.set(timeZone, format);
  }
  const parts = format.formatToParts(new Date(now));
  const hour = Number(parts.find((p) => p.type === 'hour')!.value);
  const weekday = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'].indexOf(parts.find((p) => p.type === 'weekday')!.value);
  return { hour, weekday };
}
