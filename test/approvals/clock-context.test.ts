import { expect, it } from 'vitest';
import { clockContext } from '../../src/approvals/clock-context.js';

it('gives hour and weekday in the configured time zone', () => {
  const t = Date.UTC(2026, 10, 29, 23, 30); // Sunday 23:30 UTC
  expect(clockContext(t, 'UTC')).toEqual({ hour: 23, weekday: 0 });
  expect(clockContext(t, 'Europe/Berlin')).toEqual({ hour: 0, weekday: 1 }); // Monday 00:30
  expect(clockContext(t, 'America/Los_Angeles')).toEqual({ hour: 15, weekday: 0 });
});
