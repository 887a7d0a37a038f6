/**
 * Server-rendered HTML for Port's people pages: escaping, one layout, and the
 * security headers every page carries. No framework and no scripts: the CSP allows
 * none, so an injected `<script>` would not run even if escaping were ever missed.
 */
import type { FastifyReply } from 'fastify';

const CSP = "default-src 'none'; style-src 'self' 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** Headers on every web response (pages, redirects, errors). */
export function securityHeaders(reply: FastifyReply): FastifyReply {
  return reply
    .header('Content-Security-Policy', CSP)
    .header('X-Frame-Options', 'DENY')
    .header('Referrer-Policy', 'no-referrer')
    .header('X-Content-Type-Options', 'nosniff')
    .header('Cache-Control', 'no-store');
}

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes any value for HTML text and quoted attribute values. */
export function esc(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

/** Marks a string as already-safe HTML (built only from `esc`aped parts). */
export interface Html {
  readonly html: string;
}
export const raw = (html: string): Html => ({ html });

/** Tagged template that escapes every interpolation unless it is `Html` (or an array of them). */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  values.forEach((v, i) => {
    out += render(v) + strings[i + 1]!;
  });
  return raw(out);
}

function render(v: unknown): string {
  if (Array.isArray(v)) return v.map(render).join('');
  if (v && typeof v === 'object' && 'html' in v && typeof (v as Html).html === 'string') return (v as Html).html;
  if (v === undefined || v === null || v === false) return '';
  return esc(v);
}

/** Who the page is for (the header shows them and a sign-out form). */
export interface PageViewer {
  email: string;
  name?: string;
  csrfToken: string;
}

const STYLE = `
  :root { color-scheme: light; }
  body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d232b; background: #f5f6f8; }
  header { background: #1d2a3a; color: #fff; padding: 10px 24px; display: flex; align-items: center; gap: 16px; }
  header a { color: #fff; text-decoration: none; font-weight: 600; }
  header .who { margin-left: auto; font-size: 14px; opacity: .9; }
  header form { margin: 0; }
  header button { background: transparent; color: #fff; border: 1px solid #fff8; border-radius: 4px; padding: 2px 10px; cursor: pointer; }
  main { max-width: 920px; margin: 24px auto; padding: 0 24px; }
  h1 { font-size: 22px; margin: 0 0 16px; }
  h2 { font-size: 17px; margin: 24px 0 8px; }
  .card { background: #fff; border: 1px solid #d9dee5; border-radius: 6px; padding: 14px 18px; margin: 0 0 12px; }
  .card h3 { margin: 0 0 6px; font-size: 16px; }
  .card > p:first-child { margin-top: 0; } .card > p:last-child { margin-bottom: 0; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 8px 0; }
  dt { color: #5a6573; }
  dd { margin: 0; overflow-wrap: anywhere; }
  code { font: 13px ui-monospace, SFMono-Regular, Menlo, monospace; background: #eef1f4; padding: 1px 4px; border-radius: 3px; }
  .muted { color: #5a6573; }
  .flash { background: #e6f4ea; border: 1px solid #8cc79b; border-radius: 6px; padding: 10px 14px; margin-bottom: 16px; }
  .notice { background: #fff7e0; border: 1px solid #e3c463; border-radius: 6px; padding: 10px 14px; margin: 12px 0; }
  .error { background: #fdecec; border: 1px solid #e29a9a; border-radius: 6px; padding: 12px 16px; }
  .status { display: inline-block; font-size: 12px; font-weight: 600; text-transform: uppercase; padding: 1px 8px; border-radius: 10px; background: #e8ecf1; }
  .status.pending { background: #fff1c2; } .status.unblocked { background: #d5f0dc; } .status.rejected, .status.expired { background: #f6d6d6; }
  table { border-collapse: collapse; width: 100%; background: #fff; }
  th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #e3e7ec; vertical-align: top; }
  textarea { width: 100%; box-sizing: border-box; min-height: 80px; font: inherit; padding: 6px; }
  .actions { display: flex; gap: 12px; margin-top: 10px; }
  .actions button { font: inherit; font-weight: 600; padding: 6px 18px; border-radius: 4px; border: 1px solid transparent; cursor: pointer; }
  button.approve { background: #1f7a3a; color: #fff; } button.reject { background: #fff; color: #a32020; border-color: #a32020; }
  a { color: #1d5fb0; }
`;

/** A complete page in Port's layout. */
export function page(title: string, body: Html, viewer?: PageViewer): string {
  const who = viewer
    ? html`<span class="who">${viewer.name ? `${viewer.name} · ` : ''}${viewer.email}</span>
        <form method="post" action="/logout"><input type="hidden" name="csrf" value="${viewer.csrfToken}"><button type="submit">Sign out</button></form>`
    : raw('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} · Port</title><style>${STYLE}</style></head>
<body><header><a href="/approvals">Port approvals</a>${who.html}</header>
<main>${body.html}</main></body></html>`;
}

/** Sends a page with the security headers. */
export function sendPage(reply: FastifyReply, status: number, title: string, body: Html, viewer?: PageViewer): FastifyReply {
  return securityHeaders(reply).code(status).type('text/html; charset=utf-8').send(page(title, body, viewer));
}

/** An error page: the status, Port's stable code and one clear sentence. */
export function sendErrorPage(
  reply: FastifyReply,
  status: number,
  code: string,
  message: string,
  opts: { viewer?: PageViewer; link?: { href: string; text: string } } = {},
): FastifyReply {
  const link = opts.link ?? { href: '/approvals', text: 'Back to approvals' };
  reply.header('X-Port-Error', code);
  return sendPage(
    reply,
    status,
    'Refused',
    html`<div class="error"><h1>${status >= 500 ? 'Something went wrong' : 'Refused'}</h1>
      <p>${message}</p><p class="muted">Error <code>${code}</code> (HTTP ${status})</p></div>
      <p><a href="${link.href}">${link.text}</a></p>`,
    opts.viewer,
  );
}
