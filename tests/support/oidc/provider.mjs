// Test OpenID provider for cdb-service: issues client-credentials JWT access
// tokens bound to the client's TLS certificate (RFC 8705, cnf.x5t#S256).
//
//   node tests/support/oidc/provider.mjs --port 8455 --issuer https://127.0.0.1:8455 \
//     --tls-cert server.pem --tls-key server-key.pem --jwks jwks.json \
//     --clients clients.json --audience cdb-api [--ttl 600] [--client-ca ca.pem] [--accounts accounts.json]
//
// With --client-ca, client certificates are verified against it and clients may
// authenticate with them (RFC 8705 tls_client_auth, `tls_client_auth_subject_dn`).
//
// --accounts turns on people signing in (authorization code flow, the provider's own
// login and consent pages): a JSON object {login: {name, cdb_owner, refresh_tokens}};
// any password. The file is read again at each use, so that a test can withdraw a
// person's owner (or the person) and see it at the next refresh. A client allowed the
// refresh_token grant gets a refresh token with each code (no offline_access needed),
// except for a person with "refresh_tokens": false. --ttl is the access tokens' lifetime.
// Prints exactly one line "READY <issuer>" on stdout once listening; all
// library notices go to stderr. Exits 0 on SIGTERM / SIGINT.

import { readFileSync } from 'node:fs';
import * as https from 'node:https';
import * as querystring from 'node:querystring';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

// oidc-provider prints its NOTICEs with console.info (stdout); keep stdout for
// the single READY line only.
console.info = (...args) => console.error(...args);
console.log = (...args) => console.error(...args);

// Bare audiences such as "cdb-api" are not absolute URIs, which RFC 8707 and
// oidc-provider require for `resource`. Internally the resource indicator is
// RESOURCE_PREFIX + audience; a request carrying resource=<audience> is
// rewritten to it before the provider sees the body. The token's `aud` is the
// bare audience either way.
const RESOURCE_PREFIX = 'urn:cdb:resource:';
const BODY_LIMIT = 56 * 1024;

function fail(message) {
  process.stderr.write(`provider.mjs: ${message}\n`);
  process.exit(2);
}

function readJSON(path, what) {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    return fail(`cannot read ${what} ${path}: ${err.message}`);
  }
}

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    issuer: { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    jwks: { type: 'string' },
    clients: { type: 'string' },
    audience: { type: 'string' },
    ttl: { type: 'string', default: '600' },
    accounts: { type: 'string' },
    'client-ca': { type: 'string' },
  },
  strict: true,
});

for (const name of ['port', 'issuer', 'tls-cert', 'tls-key', 'jwks', 'clients', 'audience']) {
  if (!args[name]) fail(`missing --${name}`);
}

const port = Number.parseInt(args.port, 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) fail(`bad --port ${args.port}`);
const ttl = Number.parseInt(args.ttl, 10);
if (!Number.isInteger(ttl) || ttl <= 0) fail(`bad --ttl ${args.ttl}`);

const { issuer, audience } = args;
const resourceIndicator = URL.parse(audience) ? audience : `${RESOURCE_PREFIX}${audience}`;

const jwks = readJSON(args.jwks, '--jwks');
if (!jwks || !Array.isArray(jwks.keys) || jwks.keys.length === 0) {
  fail('--jwks must be a JSON object {"keys": [...]} with at least one private JWK');
}
const signingKid = jwks.keys[0].kid;
if (typeof signingKid !== 'string' || !signingKid) fail('the first --jwks key needs a kid');

const accounts = args.accounts ? readJSON(args.accounts, '--accounts') : null;
const accountOf = (id) => (args.accounts && id ? readJSON(args.accounts, '--accounts')[id] : undefined);
const clients = readJSON(args.clients, '--clients');
if (!Array.isArray(clients)) fail('--clients must be a JSON array of client metadata objects');

// Every scope any client may hold must be known to the provider.
const scopes = new Set(['openid']);
for (const client of clients) {
  if (typeof client.scope === 'string') {
    client.scope.split(' ').filter(Boolean).forEach((s) => scopes.add(s));
  }
}

// "CN=reader,O=cdb test" against the peer certificate's subject: every named attribute
// must be there with that value.
function subjectMatches(peer, expected) {
  if (!peer || !peer.subject) return false;
  return expected.split(',').every((part) => {
    const [name, ...rest] = part.split('=');
    const want = rest.join('=').trim();
    const have = peer.subject[name.trim()];
    return Array.isArray(have) ? have.includes(want) : have === want;
  });
}

function toPEM(der) {
  const b64 = der.toString('base64').match(/.{1,64}/g).join('\n');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

const configuration = {
  clients,
  jwks,
  scopes: [...scopes],
  extraClientMetadata: {
    properties: ['cdb_owner'],
    validator(ctx, key, value) {
      if (key === 'cdb_owner' && value !== undefined && typeof value !== 'string') {
        throw new errors.InvalidClientMetadata('cdb_owner must be a string');
      }
    },
  },
  async extraTokenClaims(ctx, token) {
    // A person's owner comes from their account; a system's from its client.
    const person = accountOf(token.accountId);
    if (person && typeof person.cdb_owner === 'string') {
      return { cdb_owner: person.cdb_owner };
    }
    const client = token.client ?? ctx?.oidc?.client;
    if (client && typeof client.cdb_owner === 'string') {
      return { cdb_owner: client.cdb_owner };
    }
    return undefined;
  },
  ...(accounts ? {
    async findAccount(ctx, sub) {
      const person = accountOf(sub);
      if (!person) return undefined;
      return { accountId: sub, claims: async () => ({ sub, name: person.name }) };
    },
    claims: { openid: ['sub'], profile: ['name'] },
    // the ID token carries the name, not only userinfo
    conformIdTokenClaims: false,
  } : {}),
  async issueRefreshToken(ctx, client, code) {
    if (!client.grantTypeAllowed('refresh_token')) return false;
    return accountOf(code.accountId)?.refresh_tokens !== false;
  },
  // the only keys are ES256 ones; the library default (RS256) would reject every client
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  clientBasedCORS: () => false,
  clientAuthMethods: [
    'client_secret_basic', 'client_secret_post', 'client_secret_jwt', 'private_key_jwt', 'none',
    ...(args['client-ca'] ? ['tls_client_auth'] : []),
  ],
  ttl: {
    ClientCredentials: ttl,
    AccessToken: ttl,
  },
  features: {
    devInteractions: { enabled: Boolean(accounts) },
    rpInitiatedLogout: { enabled: true },
    clientCredentials: { enabled: true },
    mTLS: {
      enabled: true,
      certificateBoundAccessTokens: true,
      tlsClientAuth: Boolean(args['client-ca']),
      certificateAuthorized(ctx) {
        return ctx.socket?.authorized === true;
      },
      certificateSubjectMatches(ctx, property, expected) {
        if (property !== 'tls_client_auth_subject_dn') return false;
        return subjectMatches(ctx.socket?.getPeerCertificate(), expected);
      },
      getCertificate(ctx) {
        const socket = ctx.socket;
        if (!socket || typeof socket.getPeerCertificate !== 'function') return undefined;
        const peer = socket.getPeerCertificate(true);
        if (!peer || !peer.raw) return undefined;
        return toPEM(peer.raw);
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resourceIndicator,
      async getResourceServerInfo(ctx, indicator, client) {
        if (indicator !== resourceIndicator) {
          throw new errors.InvalidTarget(`unknown resource ${indicator}`);
        }
        return {
          // scopes this client may hold at this resource server
          scope: client.scope ?? [...scopes].filter((s) => s !== 'openid').join(' '),
          audience,
          accessTokenTTL: ttl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256', kid: signingKid } },
        };
      },
    },
  },
};

let provider;
try {
  provider = new Provider(issuer, configuration);
} catch (err) {
  fail(`invalid configuration: ${err.message}`);
}

// Map resource=<bare audience> to the internal resource indicator.
provider.use(async (ctx, next) => {
  if (ctx.method === 'GET' && resourceIndicator !== audience && ctx.querystring.includes('resource=')) {
    const params = new URLSearchParams(ctx.querystring);
    const resources = params.getAll('resource').map((r) => (r === audience ? resourceIndicator : r));
    params.delete('resource');
    resources.forEach((r) => params.append('resource', r));
    ctx.querystring = params.toString();
  }
  if (
    ctx.method === 'POST'
    && resourceIndicator !== audience
    && ctx.is('application/x-www-form-urlencoded')
  ) {
    const chunks = [];
    let size = 0;
    for await (const chunk of ctx.req) {
      size += chunk.length;
      if (size > BODY_LIMIT) ctx.throw(413, 'request entity too large');
      chunks.push(chunk);
    }
    const params = querystring.parse(Buffer.concat(chunks).toString('utf8'));
    if (params.resource !== undefined) {
      const map = (r) => (r === audience ? resourceIndicator : r);
      params.resource = Array.isArray(params.resource)
        ? params.resource.map(map)
        : map(params.resource);
    }
    // oidc-provider falls back to req.body when the stream was consumed.
    ctx.req.body = querystring.stringify(params);
  }
  await next();
});

// That fallback logs a one-time warning meant for real body parsers; drop it.
const warn = console.warn;
console.warn = (...args) => {
  if (typeof args[0] === 'string' && args[0].includes('already parsed request body detected')) return;
  warn(...args);
};

// One line per token issued, so that a test can count each client's renewals.
provider.on('grant.success', (ctx) => {
  process.stderr.write(`grant.success ${ctx.oidc?.client?.clientId ?? '?'}\n`);
});

provider.on('server_error', (ctx, err) => {
  process.stderr.write(`server_error: ${err.stack ?? err}\n`);
});
for (const event of ['grant.error', 'discovery.error', 'jwks.error']) {
  provider.on(event, (ctx, err) => {
    process.stderr.write(`${event}: ${err.error ?? err.name}: ${err.error_detail ?? err.error_description ?? err.message}\n`);
  });
}

const server = https.createServer({
  cert: readFileSync(args['tls-cert']),
  key: readFileSync(args['tls-key']),
  ...(args['client-ca'] ? { ca: readFileSync(args['client-ca']) } : {}),
  requestCert: true,
  rejectUnauthorized: false,
}, provider.callback());

server.on('error', (err) => fail(`server error: ${err.message}`));

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`READY ${issuer}\n`);
});

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
